package emulator

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Metadata is served as Dataverse's EntityMetadata, AttributeMetadata and
// OptionSetMetadata JSON, built from the catalog (tables.go). Objects are
// maps, so members come out sorted by name; clients do not depend on order.

type obj = map[string]any

const languageCode = 1033

func label(text, key string) obj {
	if text == "" {
		return obj{"LocalizedLabels": []any{}, "UserLocalizedLabel": nil}
	}
	l := obj{"Label": text, "LanguageCode": languageCode, "IsManaged": true,
		"MetadataId": uuid.NewSHA1(metadataNS, []byte("label/"+key)).String(), "HasChanged": nil}
	return obj{"LocalizedLabels": []any{l}, "UserLocalizedLabel": l}
}

// schemaName capitalizes a logical name the way Dataverse's schema names of
// system tables and columns read (account -> Account).
func schemaName(logical string) string {
	special := map[string]string{"systemuser": "SystemUser", "accountleads": "AccountLeads"}
	if s, ok := special[logical]; ok {
		return s
	}
	if logical == "" {
		return ""
	}
	return strings.ToUpper(logical[:1]) + logical[1:]
}

// entityProps are the EntityMetadata properties the emulator knows.
var entityProps = []string{"MetadataId", "LogicalName", "SchemaName", "EntitySetName", "LogicalCollectionName",
	"CollectionSchemaName", "PrimaryIdAttribute", "PrimaryNameAttribute", "ChangeTrackingEnabled", "IsIntersect",
	"ObjectTypeCode", "OwnershipType", "IsCustomEntity", "IsActivity", "IsValidForAdvancedFind", "IsManaged",
	"DisplayName", "DisplayCollectionName", "Description", "HasNotes", "HasActivities"}

func entityJSON(t *table) obj {
	var primaryName any
	if t.PrimaryName != "" {
		primaryName = t.PrimaryName
	}
	return obj{
		"MetadataId": t.id.String(), "LogicalName": t.Name, "SchemaName": schemaName(t.Name),
		"EntitySetName": t.SetName, "LogicalCollectionName": t.SetName, "CollectionSchemaName": schemaName(t.SetName),
		"PrimaryIdAttribute": t.PrimaryID, "PrimaryNameAttribute": primaryName,
		"ChangeTrackingEnabled": t.Tracked, "IsIntersect": t.Intersect, "ObjectTypeCode": t.ObjectTypeCode,
		"OwnershipType": t.Ownership, "IsCustomEntity": false, "IsActivity": false, "IsValidForAdvancedFind": !t.Intersect,
		"IsManaged": true, "HasNotes": !t.Intersect, "HasActivities": !t.Intersect,
		"DisplayName": label(t.Display, t.Name+"/display"), "DisplayCollectionName": label(t.Display+"s", t.Name+"/collection"),
		"Description": label("", ""),
	}
}

// attributeProps are the AttributeMetadata (base type) properties.
var attributeProps = []string{"MetadataId", "LogicalName", "SchemaName", "EntityLogicalName", "AttributeType",
	"AttributeTypeName", "AttributeOf", "ColumnNumber", "IsValidForRead", "IsValidForCreate", "IsValidForUpdate",
	"IsPrimaryId", "IsPrimaryName", "IsLogical", "IsCustomAttribute", "IsValidODataAttribute", "RequiredLevel",
	"DisplayName", "Description", "SourceType", "IsManaged"}

// derivedProps are the properties of each derived attribute type.
var derivedProps = map[string][]string{
	"StringAttributeMetadata":           {"MaxLength", "DatabaseLength", "Format", "FormatName"},
	"MemoAttributeMetadata":             {"MaxLength", "DatabaseLength", "Format"},
	"MoneyAttributeMetadata":            {"Precision", "PrecisionSource", "MinValue", "MaxValue", "IsBaseCurrency"},
	"DecimalAttributeMetadata":          {"Precision", "MinValue", "MaxValue"},
	"IntegerAttributeMetadata":          {"MinValue", "MaxValue", "Format"},
	"DoubleAttributeMetadata":           {"Precision", "MinValue", "MaxValue"},
	"BigIntAttributeMetadata":           {"MinValue", "MaxValue"},
	"DateTimeAttributeMetadata":         {"Format", "DateTimeBehavior", "MinSupportedValue", "MaxSupportedValue"},
	"BooleanAttributeMetadata":          {"DefaultValue"},
	"PicklistAttributeMetadata":         {"DefaultFormValue"},
	"StateAttributeMetadata":            {"DefaultFormValue"},
	"StatusAttributeMetadata":           {"DefaultFormValue"},
	"LookupAttributeMetadata":           {"Targets", "Format"},
	"UniqueIdentifierAttributeMetadata": {},
	"EntityNameAttributeMetadata":       {},
	// EnumAttributeMetadata is abstract: a cast to it answers the
	// attributes of the types in enumTypes.
	"EnumAttributeMetadata": {"DefaultFormValue"},
}

// enumTypes are the types derived from EnumAttributeMetadata that the
// emulator has (Dataverse's MultiSelectPicklistAttributeMetadata too).
var enumTypes = []string{"PicklistAttributeMetadata", "StateAttributeMetadata", "StatusAttributeMetadata", "EntityNameAttributeMetadata"}

// isA reports whether attribute a is of metadata type typeName or of a
// type derived from it, as an OData cast segment selects.
func isA(a *attribute, typeName string) bool {
	t := kindInfo[a.Kind].ODataType
	return t == typeName || typeName == "EnumAttributeMetadata" && slices.Contains(enumTypes, t)
}

// expandable are the navigation properties a cast may $expand.
var expandable = map[string][]string{
	"PicklistAttributeMetadata": {"OptionSet", "GlobalOptionSet"},
	"StateAttributeMetadata":    {"OptionSet", "GlobalOptionSet"},
	"StatusAttributeMetadata":   {"OptionSet", "GlobalOptionSet"},
	"BooleanAttributeMetadata":  {"OptionSet", "GlobalOptionSet"},
	"EnumAttributeMetadata":     {"OptionSet", "GlobalOptionSet"},
}

func attributeJSON(t *table, a *attribute) obj {
	info := kindInfo[a.Kind]
	required := "None"
	switch {
	case a.Name == t.PrimaryID || a.ReadOnly:
		required = "SystemRequired"
	case a.Required:
		required = "ApplicationRequired"
	}
	var attributeOf any
	if a.AttributeOf != "" {
		attributeOf = a.AttributeOf
	}
	virtual := a.AttributeOf != ""
	o := obj{
		"@odata.type": "#Microsoft.Dynamics.CRM." + info.ODataType,
		"MetadataId":  a.id.String(), "LogicalName": a.Name, "SchemaName": schemaName(a.Name), "EntityLogicalName": t.Name,
		"AttributeType": info.AttributeType, "AttributeTypeName": obj{"Value": info.TypeName}, "AttributeOf": attributeOf,
		"ColumnNumber": a.number, "IsValidForRead": true,
		"IsValidForCreate": !a.ReadOnly && !virtual, "IsValidForUpdate": !a.ReadOnly && !virtual && a.Name != t.PrimaryID,
		"IsPrimaryId": a.Name == t.PrimaryID, "IsPrimaryName": a.Name == t.PrimaryName, "IsLogical": virtual,
		"IsCustomAttribute": false, "IsValidODataAttribute": !virtual, "IsManaged": true,
		"RequiredLevel": obj{"Value": required, "CanBeChanged": false, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
		"DisplayName":   label(a.Display, t.Name+"/"+a.Name), "Description": label("", ""), "SourceType": 0,
	}
	switch a.Kind {
	case kString:
		format := "Text"
		switch {
		case strings.HasPrefix(a.Name, "emailaddress"), a.Name == "internalemailaddress":
			format = "Email"
		case strings.HasPrefix(a.Name, "telephone"), a.Name == "mobilephone":
			format = "Phone"
		case a.Name == "websiteurl":
			format = "Url"
		}
		o["MaxLength"], o["DatabaseLength"], o["Format"], o["FormatName"] = a.MaxLength, a.MaxLength*2, format, obj{"Value": format}
	case kMemo:
		o["MaxLength"], o["DatabaseLength"], o["Format"] = a.MaxLength, a.MaxLength*2, "TextArea"
	case kMoney:
		o["Precision"], o["PrecisionSource"], o["MinValue"], o["MaxValue"], o["IsBaseCurrency"] = a.Precision, 2, a.Min, a.Max, false
	case kDecimal, kDouble:
		o["Precision"], o["MinValue"], o["MaxValue"] = a.Precision, a.Min, a.Max
	case kInteger:
		o["MinValue"], o["MaxValue"], o["Format"] = int64(a.Min), int64(a.Max), "None"
	case kBigInt:
		o["MinValue"], o["MaxValue"] = int64(math.MinInt64), int64(math.MaxInt64)
	case kDateTime, kDateOnly:
		format, behavior := "DateAndTime", "UserLocal"
		if a.Kind == kDateOnly {
			format, behavior = "DateOnly", "DateOnly"
		}
		o["Format"], o["DateTimeBehavior"] = format, obj{"Value": behavior}
		o["MinSupportedValue"], o["MaxSupportedValue"] = "1753-01-01T00:00:00Z", "9999-12-30T23:59:59Z"
	case kBoolean:
		o["DefaultValue"] = false
	case kPicklist, kState, kStatus:
		o["DefaultFormValue"] = -1
	case kLookup, kCustomer, kOwner:
		o["Targets"], o["Format"] = a.Targets, "None"
	}
	return o
}

func optionSetJSON(a *attribute) obj {
	if a.Kind == kBoolean {
		return obj{"MetadataId": uuid.NewSHA1(metadataNS, []byte("optionset/"+a.entity+"_"+a.Name)).String(),
			"Name": a.entity + "_" + a.Name, "IsGlobal": false, "OptionSetType": "Boolean",
			"TrueOption":  obj{"Value": 1, "Label": label("Yes", a.entity+"/"+a.Name+"/1")},
			"FalseOption": obj{"Value": 0, "Label": label("No", a.entity+"/"+a.Name+"/0")}}
	}
	set := a.Options
	kindName := map[kind]string{kPicklist: "Picklist", kState: "State", kStatus: "Status"}[a.Kind]
	return optionSetObject(set, kindName, a.Kind)
}

func optionSetObject(set *optionSet, kindName string, k kind) obj {
	opts := make([]any, len(set.Options))
	for i, op := range set.Options {
		o := obj{"Value": op.Value, "Color": nil, "IsManaged": true, "ExternalValue": nil, "ParentValues": []any{},
			"MetadataId": nil, "HasChanged": nil,
			"Label":       label(op.Label, "option/"+set.Name+"/"+strconv.Itoa(op.Value)),
			"Description": label("", "")}
		switch k {
		case kState:
			o["@odata.type"] = "#Microsoft.Dynamics.CRM.StateOptionMetadata"
			o["DefaultStatus"], o["InvariantName"] = op.DefaultStatus, op.Label
		case kStatus:
			o["@odata.type"] = "#Microsoft.Dynamics.CRM.StatusOptionMetadata"
			o["State"], o["TransitionData"] = op.State, nil
		}
		opts[i] = o
	}
	return obj{"MetadataId": uuid.NewSHA1(metadataNS, []byte("optionset/"+set.Name)).String(), "Name": set.Name,
		"IsGlobal": set.Global, "IsCustomOptionSet": false, "IsManaged": true, "OptionSetType": kindName,
		"ExternalTypeName": nil, "DisplayName": label(set.Name, "optionset/"+set.Name), "Description": label("", ""),
		"Options": opts}
}

// metaQuery is the query of a metadata read.
type metaQuery struct {
	sel    []string // nil: all
	filter []metaCond
	expand []string
	// expandAttrs is $expand=Attributes(...) on an entity.
	expandAttrs *metaQuery
}

type metaCond struct {
	prop  string
	value any // string, bool or float64
}

func (c metaCond) match(o obj) bool {
	v := o[c.prop]
	switch x := v.(type) {
	case int:
		f, ok := c.value.(float64)
		return ok && float64(x) == f
	default:
		return v == c.value
	}
}

func parseMetaQuery(v url.Values, allowed []string, typeName string, expandOK []string) (*metaQuery, error) {
	q := &metaQuery{}
	for name := range v {
		switch name {
		case "$select", "$filter", "$expand":
		default:
			return nil, errQuery("The query option '%s' is not supported by the lakelink emulator on metadata.", name)
		}
	}
	if s := v.Get("$select"); s != "" {
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(allowed, p) {
				return nil, errNoProperty(p, typeName)
			}
			q.sel = append(q.sel, p)
		}
	}
	if f := v.Get("$filter"); f != "" {
		for _, term := range strings.Split(f, " and ") {
			prop, lit, ok := strings.Cut(strings.TrimSpace(term), " eq ")
			if !ok {
				return nil, errQuery("The lakelink emulator supports only $filter terms of the form 'Property eq literal' joined by 'and' on metadata; got '%s'.", term)
			}
			prop, lit = strings.TrimSpace(prop), strings.TrimSpace(lit)
			if !slices.Contains(allowed, prop) {
				return nil, errNoProperty(prop, typeName)
			}
			c := metaCond{prop: prop}
			switch {
			case lit == "true" || lit == "false":
				c.value = lit == "true"
			case strings.HasSuffix(lit, "'") && strings.Contains(lit, "'"):
				// 'x', or an enum literal such as Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'.
				i := strings.IndexByte(lit, '\'')
				c.value = strings.ReplaceAll(lit[i+1:len(lit)-1], "''", "'")
			default:
				n, err := strconv.ParseFloat(lit, 64)
				if err != nil {
					return nil, errQuery("Invalid literal '%s' in $filter.", lit)
				}
				c.value = n
			}
			q.filter = append(q.filter, c)
		}
	}
	if x := v.Get("$expand"); x != "" {
		for _, item := range splitTop(x) {
			name, inner, _ := strings.Cut(item, "(")
			name = strings.TrimSpace(name)
			if !slices.Contains(expandOK, name) {
				return nil, errQuery("Could not find a property named '%s' on type '%s'.", name, typeName)
			}
			if name == "Attributes" {
				iv := url.Values{}
				for _, opt := range strings.Split(strings.TrimSuffix(inner, ")"), ";") {
					if k, val, ok := strings.Cut(opt, "="); ok {
						iv.Set(strings.TrimSpace(k), val)
					}
				}
				aq, err := parseMetaQuery(iv, attributeProps, "Microsoft.Dynamics.CRM.AttributeMetadata", nil)
				if err != nil {
					return nil, err
				}
				q.expandAttrs = aq
				continue
			}
			q.expand = append(q.expand, name)
		}
	}
	return q, nil
}

// splitTop splits a comma list, ignoring commas inside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// project applies $select (keeping @odata.type and MetadataId, as the
// service does) and reports whether o passes $filter.
func (q *metaQuery) project(o obj) (obj, bool) {
	for _, c := range q.filter {
		if !c.match(o) {
			return nil, false
		}
	}
	if q.sel == nil {
		return o, true
	}
	out := obj{"MetadataId": o["MetadataId"]}
	if t, ok := o["@odata.type"]; ok {
		out["@odata.type"] = t
	}
	for _, p := range q.sel {
		out[p] = o[p]
	}
	return out, true
}

func (q *metaQuery) contextSuffix() string {
	names := slices.Clone(q.sel)
	names = append(names, q.expand...)
	if len(names) == 0 {
		return ""
	}
	return "(" + strings.Join(names, ",") + ")"
}

func writeObj(w http.ResponseWriter, o obj) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	writeBody(w, http.StatusOK, body)
	return nil
}

// findTable resolves an EntityDefinitions key: LogicalName='x' or a
// MetadataId.
func (e *Emulator) findTable(key string) (*table, bool) {
	if name, ok := strings.CutPrefix(key, "LogicalName="); ok {
		t, ok := e.byName[strings.Trim(name, "'")]
		return t, ok
	}
	for _, t := range e.tables {
		if t.id.String() == strings.Trim(key, "'") {
			return t, true
		}
	}
	return nil, false
}

func (e *Emulator) entityDefinitions(w http.ResponseWriter, r *http.Request, key string, hasKey bool, rest string) error {
	base := e.base(r)
	v := r.URL.Query()
	if !hasKey {
		if rest != "" {
			return errSegment("EntityDefinitions/" + rest)
		}
		q, err := parseMetaQuery(v, entityProps, "Microsoft.Dynamics.CRM.EntityMetadata", []string{"Attributes"})
		if err != nil {
			return err
		}
		var list []any
		for _, t := range e.tables {
			if o, ok := q.project(entityJSON(t)); ok {
				e.expandAttributes(o, t, q)
				list = append(list, o)
			}
		}
		if list == nil {
			list = []any{}
		}
		return writeObj(w, obj{"@odata.context": base + "/$metadata#EntityDefinitions" + q.contextSuffix(), "value": list})
	}
	t, ok := e.findTable(key)
	if !ok {
		return &apiError{http.StatusNotFound, codeObjectDoesNotExist, "Could not find entity with key " + key + "."}
	}
	if rest == "" {
		q, err := parseMetaQuery(v, entityProps, "Microsoft.Dynamics.CRM.EntityMetadata", []string{"Attributes"})
		if err != nil {
			return err
		}
		o, _ := q.project(entityJSON(t))
		e.expandAttributes(o, t, q)
		o["@odata.context"] = base + "/$metadata#EntityDefinitions" + q.contextSuffix() + "/$entity"
		return writeObj(w, o)
	}
	return e.attributes(w, r, t, rest)
}

func (e *Emulator) expandAttributes(o obj, t *table, q *metaQuery) {
	if q.expandAttrs == nil {
		return
	}
	var list []any
	for _, a := range t.Attrs {
		if ao, ok := q.expandAttrs.project(attributeJSON(t, a)); ok {
			list = append(list, ao)
		}
	}
	o["Attributes"] = list
}

// attributes serves EntityDefinitions(...)/Attributes[(LogicalName='x')][/<cast>].
func (e *Emulator) attributes(w http.ResponseWriter, r *http.Request, t *table, rest string) error {
	seg, cast, _ := strings.Cut(rest, "/")
	name, key, hasKey := splitKey(seg)
	if name != "Attributes" {
		return errSegment(rest)
	}
	typeName := "AttributeMetadata"
	if cast != "" {
		tn, ok := strings.CutPrefix(cast, "Microsoft.Dynamics.CRM.")
		if _, known := derivedProps[tn]; !ok || !known {
			return errSegment(cast)
		}
		typeName = tn
	}
	allowed := slices.Concat(attributeProps, derivedProps[typeName])
	q, err := parseMetaQuery(r.URL.Query(), allowed, "Microsoft.Dynamics.CRM."+typeName, expandable[typeName])
	if err != nil {
		return err
	}
	render := func(a *attribute) (obj, bool) {
		full := attributeJSON(t, a)
		o, ok := q.project(full)
		if !ok {
			return nil, false
		}
		for _, x := range q.expand {
			switch x {
			case "OptionSet":
				if a.Kind == kEntityName {
					// An EntityName attribute's choices are the
					// lookup's target tables, not an option set.
					o["OptionSet"] = nil
				} else {
					o["OptionSet"] = optionSetJSON(a)
				}
			case "GlobalOptionSet":
				if a.Options != nil && a.Options.Global {
					o["GlobalOptionSet"] = optionSetJSON(a)
				} else {
					o["GlobalOptionSet"] = nil
				}
			}
		}
		return o, true
	}
	base := e.base(r)
	ctx := base + "/$metadata#EntityDefinitions('" + t.id.String() + "')/Attributes"
	if cast != "" {
		ctx += "/" + cast
	}
	ctx += q.contextSuffix()
	if hasKey {
		a, ok := t.byName[strings.Trim(strings.TrimPrefix(key, "LogicalName="), "'")]
		if !ok {
			for _, x := range t.Attrs {
				if x.id.String() == key {
					a, ok = x, true
				}
			}
		}
		if !ok {
			return &apiError{http.StatusNotFound, codeObjectDoesNotExist, "Could not find attribute with key " + key + " on entity " + t.Name + "."}
		}
		if cast != "" && !isA(a, typeName) {
			return &apiError{http.StatusNotFound, codeResourceNotFound, "The attribute '" + a.Name + "' is not of type Microsoft.Dynamics.CRM." + typeName + "."}
		}
		o, _ := render(a)
		o["@odata.context"] = ctx + "/$entity"
		return writeObj(w, o)
	}
	list := []any{}
	for _, a := range t.Attrs {
		if cast != "" && !isA(a, typeName) {
			continue
		}
		if o, ok := render(a); ok {
			list = append(list, o)
		}
	}
	return writeObj(w, obj{"@odata.context": ctx, "value": list})
}

var optionSetProps = []string{"MetadataId", "Name", "IsGlobal", "IsCustomOptionSet", "IsManaged", "OptionSetType",
	"ExternalTypeName", "DisplayName", "Description", "Options"}

func (e *Emulator) globalOptionSets(w http.ResponseWriter, r *http.Request, key string, hasKey bool, rest string) error {
	if rest != "" {
		return errSegment(rest)
	}
	q, err := parseMetaQuery(r.URL.Query(), optionSetProps, "Microsoft.Dynamics.CRM.OptionSetMetadataBase", nil)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(e.global))
	for n := range e.global {
		names = append(names, n)
	}
	slices.Sort(names)
	render := func(set *optionSet) (obj, bool) {
		o := optionSetObject(set, "Picklist", kPicklist)
		o["@odata.type"] = "#Microsoft.Dynamics.CRM.OptionSetMetadata"
		return q.project(o)
	}
	base := e.base(r)
	if hasKey {
		name := strings.Trim(strings.TrimPrefix(key, "Name="), "'")
		set, ok := e.global[name]
		if !ok {
			for _, s := range e.global {
				if uuid.NewSHA1(metadataNS, []byte("optionset/"+s.Name)).String() == name {
					set, ok = s, true
				}
			}
		}
		if !ok {
			return &apiError{http.StatusNotFound, codeObjectDoesNotExist, "Could not find optionset with key " + key + "."}
		}
		o, _ := render(set)
		o["@odata.context"] = base + "/$metadata#GlobalOptionSetDefinitions" + q.contextSuffix() + "/$entity"
		return writeObj(w, o)
	}
	list := []any{}
	for _, n := range names {
		if o, ok := render(e.global[n]); ok {
			list = append(list, o)
		}
	}
	return writeObj(w, obj{"@odata.context": base + "/$metadata#GlobalOptionSetDefinitions" + q.contextSuffix(), "value": list})
}
