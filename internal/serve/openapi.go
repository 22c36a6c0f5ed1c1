package serve

import (
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
)

// The OpenAPI 3 document is generated from the routes (routes) and, by
// reflection, from the Go types their handlers decode and encode: a field
// added to a response type is in the document with the next build.

// schemaTyper is implemented by a type whose JSON is described by another
// Go type (a profile body is described by config.Link).
type schemaTyper interface{ schemaType() reflect.Type }

// openAPIDoc builds the document.
func (s *Service) openAPIDoc() map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	problemRef := g.ref(reflect.TypeFor[Problem]())
	paths := map[string]map[string]any{}
	wildcard := regexp.MustCompile(`\{([a-z_]+)\}`)
	for _, rt := range s.routes() {
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt),
		}
		var params []any
		for _, m := range wildcard.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.doc, "schema": map[string]any{"type": q.typ}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.in != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": g.ref(rt.in)}}}
		}
		ok := map[string]any{"description": http.StatusText(rt.status)}
		switch {
		case rt.out != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.ref(rt.out)}}
		case rt.contentType != "":
			ok["content"] = map[string]any{rt.contentType: map[string]any{"schema": map[string]any{}}}
		}
		problemResp := map[string]any{"description": "A problem (RFC 9457); its type is one of ProblemTypes", "content": map[string]any{"application/problem+json": map[string]any{"schema": problemRef}}}
		op["responses"] = map[string]any{strconv.Itoa(rt.status): ok, "default": problemResp}
		if rt.role != RoleNone {
			op["security"] = []any{map[string]any{"bearer": []any{}}}
			op["x-lakelink-role"] = string(rt.role)
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	var kinds []any
	for _, k := range problemKinds {
		kinds = append(kinds, problemPrefix+k.slug)
	}
	g.defs["ProblemTypes"] = map[string]any{"type": "string", "enum": kinds, "description": "The stable values of Problem.type"}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "lakelink serve",
			"version":     "v1",
			"description": "Links, their tables, actions, source browsing and SQL on the lake (docs/serve.md).",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":         g.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "a token from lakelink token create"}},
		},
	}
}

func (s *Service) openAPI(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.openAPIDoc())
}

func operationID(rt route) string {
	parts := []string{strings.ToLower(rt.method)}
	for _, p := range strings.Split(rt.path, "/") {
		if p == "" || p == "api" || p == "v1" {
			continue
		}
		p = strings.Trim(p, "{}")
		parts = append(parts, strings.ToUpper(p[:1])+p[1:])
	}
	return strings.ReplaceAll(strings.Join(parts, ""), ".", "")
}

// schemaGen turns Go types into JSON Schema (OpenAPI 3.0's dialect), one
// named component per struct type.
type schemaGen struct {
	defs map[string]any
}

var (
	timeType           = reflect.TypeFor[time.Time]()
	engineDurationType = reflect.TypeFor[engine.Duration]()
	configDurationType = reflect.TypeFor[config.Duration]()
	schemaTyperType    = reflect.TypeFor[schemaTyper]()
)

// ref returns the schema of t: a $ref for named structs, inline otherwise.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	if reflect.PointerTo(t).Implements(schemaTyperType) || t.Implements(schemaTyperType) {
		v := reflect.New(t)
		if t.Kind() == reflect.Pointer {
			v = reflect.New(t.Elem())
		}
		return g.ref(v.Interface().(schemaTyper).schemaType())
	}
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case engineDurationType:
		return map[string]any{"type": "number", "description": "seconds"}
	case configDurationType:
		return map[string]any{"type": "string", "description": "a duration: 30s, 15m, 1h"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.ref(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.ref(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.ref(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.object(t)
		}
		if pkg := t.PkgPath(); !strings.HasSuffix(pkg, "/serve") {
			name = pkg[strings.LastIndex(pkg, "/")+1:] + "." + name
		}
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = map[string]any{} // breaks cycles
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

// object is the schema of a struct: its exported fields under their json
// names (yaml names for the profile types, which have no json tags),
// embedded structs flattened as encoding/json does.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []any
	g.fields(t, props, &required)
	s := map[string]any{"type": "object", "properties": props}
	if required != nil {
		s["required"] = required
	}
	return s
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, ok := f.Tag.Lookup("json")
		if !ok {
			tag, ok = f.Tag.Lookup("yaml")
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.ref(f.Type)
		if ok && !strings.Contains(opts, "omit") && f.Tag.Get("yaml") == "" {
			*required = append(*required, name)
		}
	}
}
