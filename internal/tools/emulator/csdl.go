package emulator

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
)

// GET $metadata: the service's CSDL document (OData 4.0 XML), which OData
// clients read to learn the entity types and sets. It is built from the
// same catalogue as the JSON metadata, so both always agree. As in
// Dataverse, every entity type derives from the abstract
// mscrm.crmbaseentity, its key is the primary id, lookups appear twice
// (the _x_value Edm.Guid property and a single-valued navigation property
// named as for @odata.bind), and the container "System" holds one
// EntitySet per table, with the WhoAmI function import.

func (e *Emulator) csdl(w http.ResponseWriter) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>` + "\n")
	b.WriteString(`<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">` + "\n")
	b.WriteString(`<EntityType Name="crmbaseentity" Abstract="true"/>` + "\n")
	for _, t := range e.tables {
		b.WriteString(`<EntityType Name="` + xmlText(t.Name) + `" BaseType="mscrm.crmbaseentity">` + "\n")
		b.WriteString(`<Key><PropertyRef Name="` + xmlText(t.PrimaryID) + `"/></Key>` + "\n")
		for _, a := range t.Attrs {
			if a.AttributeOf != "" {
				continue
			}
			b.WriteString(`<Property Name="` + xmlText(a.property) + `" Type="` + edmType(a) + `"`)
			switch {
			case a.Kind == kString || a.Kind == kMemo:
				if a.MaxLength > 0 {
					b.WriteString(` MaxLength="` + strconv.Itoa(a.MaxLength) + `"`)
				}
			case a.Kind == kMoney || a.Kind == kDecimal:
				b.WriteString(` Scale="Variable"`)
			case a.Name == t.PrimaryID:
				b.WriteString(` Nullable="false"`)
			}
			b.WriteString(`/>` + "\n")
		}
		for _, nav := range sortedNavs(t) {
			b.WriteString(`<NavigationProperty Name="` + xmlText(nav) + `" Type="mscrm.` + xmlText(t.navs[nav].target) + `"/>` + "\n")
		}
		b.WriteString(`</EntityType>` + "\n")
	}
	b.WriteString(`<ComplexType Name="WhoAmIResponse"><Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false"/>` +
		`<Property Name="UserId" Type="Edm.Guid" Nullable="false"/><Property Name="OrganizationId" Type="Edm.Guid" Nullable="false"/></ComplexType>` + "\n")
	b.WriteString(`<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/></Function>` + "\n")
	b.WriteString(`<EntityContainer Name="System">` + "\n")
	for _, t := range e.tables {
		b.WriteString(`<EntitySet Name="` + xmlText(t.SetName) + `" EntityType="Microsoft.Dynamics.CRM.` + xmlText(t.Name) + `">` + "\n")
		for _, nav := range sortedNavs(t) {
			if target, ok := e.byName[t.navs[nav].target]; ok {
				b.WriteString(`<NavigationPropertyBinding Path="` + xmlText(nav) + `" Target="` + xmlText(target.SetName) + `"/>` + "\n")
			}
		}
		b.WriteString(`</EntitySet>` + "\n")
	}
	b.WriteString(`<FunctionImport Name="WhoAmI" Function="Microsoft.Dynamics.CRM.WhoAmI" IncludeInServiceDocument="false"/>` + "\n")
	b.WriteString(`</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>` + "\n")
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// sortedNavs lists a table's navigation properties in name order, so the
// document is the same in every run.
func sortedNavs(t *table) []string {
	names := make([]string, 0, len(t.navs))
	for n := range t.navs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
