package dataverse

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// attribute is the part of AttributeMetadata (and its derived types) the
// connector uses. Pointers tell "absent" from zero.
type attribute struct {
	LogicalName       string `json:"LogicalName"`
	AttributeType     string `json:"AttributeType"`
	AttributeTypeName *struct {
		Value string `json:"Value"`
	} `json:"AttributeTypeName"`
	MaxLength      *int  `json:"MaxLength"`
	Precision      *int  `json:"Precision"`
	IsValidForRead *bool `json:"IsValidForRead"`
	// IsValidODataAttribute is false for attributes the Web API cannot
	// $select (they exist only for the SDK).
	IsValidODataAttribute *bool    `json:"IsValidODataAttribute"`
	AttributeOf           *string  `json:"AttributeOf"`
	ColumnNumber          int      `json:"ColumnNumber"`
	Targets               []string `json:"Targets"`
}

// attributeTypeCodes are the AttributeTypeCode values of the AttributeType
// names, as the lake's AttributeMetadata records them.
var attributeTypeCodes = map[string]int{
	"Boolean": 0, "Customer": 1, "DateTime": 2, "Decimal": 3, "Double": 4,
	"Integer": 5, "Lookup": 6, "Memo": 7, "Money": 8, "Owner": 9, "PartyList": 10,
	"Picklist": 11, "State": 12, "Status": 13, "String": 14, "Uniqueidentifier": 15,
	"CalendarRules": 16, "Virtual": 17, "BigInt": 18, "ManagedProperty": 19, "EntityName": 20,
}

// cdmType maps an AttributeType to its CDM type; ok is false for the types
// the lake does not hold (virtual, image, file, party lists, ...).
func cdmType(a attribute) (t schema.Type, ok bool) {
	if a.AttributeTypeName != nil {
		switch a.AttributeTypeName.Value {
		case "MultiSelectPicklistType":
			return schema.String, true
		case "ImageType", "FileType", "VirtualType":
			return "", false
		}
	}
	switch a.AttributeType {
	case "String", "Memo", "EntityName":
		return schema.String, true
	case "Money", "Decimal":
		return schema.Decimal, true
	case "Integer", "BigInt", "Picklist", "State", "Status":
		return schema.Int64, true
	case "Double":
		return schema.Double, true
	case "Boolean":
		return schema.Boolean, true
	case "DateTime":
		return schema.DateTime, true
	case "Uniqueidentifier", "Lookup", "Customer", "Owner":
		return schema.Guid, true
	}
	return "", false
}

func isLookup(t string) bool { return t == "Lookup" || t == "Customer" || t == "Owner" }

// columns turns attribute metadata into the table's fields, in ColumnNumber
// order. Lookups keep their logical name (parentcustomerid) and are read
// from _<name>_value. An attribute that belongs to another one
// (AttributeOf: owneridname, revenue_base's yomi names, ...) is skipped,
// except a lookup's EntityName companion (owneridtype), which is read from
// the lookup's lookuplogicalname annotation.
func columns(attrs []attribute) []field {
	lookups := map[string]bool{}
	for _, a := range attrs {
		if isLookup(a.AttributeType) {
			lookups[a.LogicalName] = true
		}
	}
	slices.SortStableFunc(attrs, func(a, b attribute) int { return cmp.Compare(a.ColumnNumber, b.ColumnNumber) })
	var out []field
	for _, a := range attrs {
		if a.IsValidForRead != nil && !*a.IsValidForRead || a.IsValidODataAttribute != nil && !*a.IsValidODataAttribute {
			continue
		}
		t, ok := cdmType(a)
		if !ok || !logicalName.MatchString(a.LogicalName) {
			continue
		}
		f := field{Column: schema.Column{
			Name:           a.LogicalName,
			Type:           t,
			SourceType:     a.AttributeType,
			SourceTypeCode: attributeTypeCodes[a.AttributeType],
		}, wire: a.LogicalName, selectName: a.LogicalName}
		of := ""
		if a.AttributeOf != nil {
			of = *a.AttributeOf
		}
		switch {
		case of != "" && a.AttributeType == "EntityName" && lookups[of]:
			f.wire, f.selectName = "_"+of+"_value"+lookupTypeAnnotation, ""
		case of != "":
			continue
		case isLookup(a.AttributeType):
			f.wire = "_" + a.LogicalName + "_value"
			f.selectName = f.wire
			f.Targets = a.Targets
		}
		switch t {
		case schema.String:
			if a.MaxLength != nil && *a.MaxLength > 0 && a.AttributeType != "EntityName" {
				f.MaxLength = *a.MaxLength
			}
		case schema.Decimal:
			// Dataverse's Precision of money and decimal columns is the
			// number of digits after the point; the lake writes decimal(38, s).
			f.Precision = 38
			if a.Precision != nil {
				f.Scale = *a.Precision
			}
		}
		out = append(out, f)
	}
	return out
}

// label is a Dataverse Label.
type label struct {
	LocalizedLabels []localizedLabel `json:"LocalizedLabels"`
	UserLocalized   *localizedLabel  `json:"UserLocalizedLabel"`
}

type localizedLabel struct {
	Label        string `json:"Label"`
	LanguageCode int    `json:"LanguageCode"`
}

// options turns a label into one schema.Option per language. Labels the
// organisation localised only for the user (no LocalizedLabels) are kept
// and marked UserLocalized.
func (l label) options(value int) []schema.Option {
	var out []schema.Option
	for _, ll := range l.LocalizedLabels {
		out = append(out, schema.Option{Value: value, Label: ll.Label, Language: ll.LanguageCode})
	}
	if len(out) == 0 && l.UserLocalized != nil {
		out = append(out, schema.Option{Value: value, Label: l.UserLocalized.Label, Language: l.UserLocalized.LanguageCode, UserLocalized: true})
	}
	return out
}

type optionMeta struct {
	Value int   `json:"Value"`
	State *int  `json:"State"`
	Label label `json:"Label"`
}

type optionSetMeta struct {
	Name     string       `json:"Name"`
	IsGlobal bool         `json:"IsGlobal"`
	Options  []optionMeta `json:"Options"`
	// TrueOption and FalseOption replace Options for a Boolean column.
	TrueOption  *optionMeta `json:"TrueOption"`
	FalseOption *optionMeta `json:"FalseOption"`
}

type choiceAttribute struct {
	LogicalName string `json:"LogicalName"`
	// AttributeType tells the attributes of the EnumAttributeMetadata
	// cast apart (Picklist, State, Status, ...).
	AttributeType   string         `json:"AttributeType"`
	OptionSet       *optionSetMeta `json:"OptionSet"`
	GlobalOptionSet *optionSetMeta `json:"GlobalOptionSet"`
}

// readLayout reads the table's definition with its attributes in one
// request: all Copy and Stream need. It gives the wire layout, the table's
// description without choice metadata, and the AttributeTypes its
// attributes have (which choice metadata there is to read).
func (s *Source) readLayout(ctx context.Context, table string) (*layout, *schema.Table, map[string]bool, error) {
	if !logicalName.MatchString(table) {
		return nil, nil, nil, fmt.Errorf("dataverse: %q is not a table logical name (lower-case letters, digits and _)", table)
	}
	var d struct {
		entityDef
		Attributes []attribute `json:"Attributes"`
	}
	if err := s.getJSON(ctx, table, definition(table)+"?"+entitySelect+"&$expand=Attributes", &d); err != nil {
		return nil, nil, nil, err
	}
	if !d.ChangeTrackingEnabled {
		return nil, nil, nil, &source.NotTrackedError{Table: table, Fix: "enable it in the Power Apps maker portal (Tables > " + table +
			" > Properties > Advanced options > Track changes) or set the table's EntityMetadata ChangeTrackingEnabled property to true, then link the table again"}
	}
	if d.EntitySetName == "" || d.PrimaryIdAttribute == "" {
		return nil, nil, nil, fmt.Errorf("dataverse table %s has no entity set or primary id in EntityDefinitions: the Web API cannot read it", table)
	}
	l := newLayout(table, d.EntitySetName, d.PrimaryIdAttribute, columns(d.Attributes))
	t := &schema.Table{Name: table, Key: []string{d.PrimaryIdAttribute}}
	for _, f := range l.fields {
		t.Columns = append(t.Columns, f.Column)
	}
	if _, ok := t.Column(d.PrimaryIdAttribute); !ok {
		return nil, nil, nil, fmt.Errorf("dataverse table %s: its primary id %s is not among its readable attributes", table, d.PrimaryIdAttribute)
	}
	if _, ok := t.Column("versionnumber"); !ok {
		return nil, nil, nil, fmt.Errorf("dataverse table %s has no readable versionnumber attribute: its changes cannot be ordered", table)
	}
	if c, ok := t.Column("createdon"); ok && c.Type == schema.DateTime && !d.IsIntersect {
		t.PartitionColumn = "createdon"
	} else {
		t.AppendOnly = true
	}
	types := map[string]bool{}
	for _, a := range d.Attributes {
		types[a.AttributeType] = true
	}
	return l, t, types, nil
}

func definition(table string) string {
	return apiPath + "EntityDefinitions(LogicalName='" + table + "')"
}

// choiceCasts are the requests of a table's choice metadata, each for the
// AttributeTypes it answers. EnumAttributeMetadata, the base type of
// Picklist, State and Status attributes (and of EntityName and multi-select
// ones, which the lake has no labels for), answers all three in one
// request; Boolean attributes are not enum attributes and take their own.
// A cast is read only when the table has an attribute of its types: three
// requests a described table at most, instead of the five of one cast per
// type (issue #16: describes were most of an initial sync's requests).
var choiceCasts = []struct {
	cast  string
	types []string
}{
	{"EnumAttributeMetadata", []string{"Picklist", "State", "Status"}},
	{"BooleanAttributeMetadata", []string{"Boolean"}},
}

// describe reads the table's layout and its choice columns' options.
func (s *Source) describe(ctx context.Context, table string) (*schema.Table, *layout, error) {
	l, t, types, err := s.readLayout(ctx, table)
	if err != nil {
		return nil, nil, err
	}
	if err := s.readChoices(ctx, t, types); err != nil {
		return nil, nil, err
	}
	return t, l, nil
}

// readChoices adds to t, as readLayout described it with the attribute
// types types, its choice columns' options.
func (s *Source) readChoices(ctx context.Context, t *schema.Table, types map[string]bool) error {
	table := t.Name
	def := definition(table)
	for _, c := range choiceCasts {
		if !slices.ContainsFunc(c.types, func(k string) bool { return types[k] }) {
			continue
		}
		var body struct {
			Value []choiceAttribute `json:"value"`
		}
		if err := s.getJSON(ctx, table, def+"/Attributes/Microsoft.Dynamics.CRM."+c.cast+"?$select=LogicalName,AttributeType&$expand=OptionSet,GlobalOptionSet", &body); err != nil {
			return err
		}
		for _, a := range body.Value {
			set := a.OptionSet
			if set == nil {
				set = a.GlobalOptionSet
			}
			if set == nil {
				continue
			}
			switch a.AttributeType {
			case "Picklist":
				os := schema.OptionSet{Column: a.LogicalName}
				if a.GlobalOptionSet != nil {
					os.Global = a.GlobalOptionSet.Name
				} else if set.IsGlobal {
					os.Global = set.Name
				}
				for _, o := range set.Options {
					os.Options = append(os.Options, o.Label.options(o.Value)...)
				}
				t.OptionSets = append(t.OptionSets, os)
			case "Boolean":
				// Boolean columns get their two labels in OptionsetMetadata
				// too, under the values 0 and 1 the lake writes as False/True.
				os := schema.OptionSet{Column: a.LogicalName}
				for _, o := range []*optionMeta{set.FalseOption, set.TrueOption} {
					if o != nil {
						os.Options = append(os.Options, o.Label.options(o.Value)...)
					}
				}
				if len(os.Options) > 0 {
					t.OptionSets = append(t.OptionSets, os)
				}
			case "State":
				for _, o := range set.Options {
					t.States = append(t.States, o.Label.options(o.Value)...)
				}
			case "Status":
				for _, o := range set.Options {
					state := 0
					if o.State != nil {
						state = *o.State
					}
					for _, opt := range o.Label.options(o.Value) {
						t.Statuses = append(t.Statuses, schema.StatusOption{State: state, Option: opt})
					}
				}
			}
		}
	}
	return nil
}
