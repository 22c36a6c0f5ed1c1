package emulator

import (
	"fmt"

	"github.com/google/uuid"
)

// kind is an attribute's Dataverse type as the emulator handles it.
type kind int

const (
	kString kind = iota
	kMemo
	kMoney
	kDecimal
	kInteger
	kDouble
	kBigInt
	kDateTime // date and time, UTC
	kDateOnly // DateTime attribute with Format DateOnly
	kBoolean
	kPicklist
	kState
	kStatus
	kLookup
	kCustomer
	kOwner
	kUniqueID
	kEntityName // virtual: the target type of a polymorphic lookup
)

// typeInfo names a kind the way metadata spells it.
type typeInfo struct {
	AttributeType string // AttributeType
	TypeName      string // AttributeTypeName.Value
	ODataType     string // derived metadata type (after #Microsoft.Dynamics.CRM.)
}

var kindInfo = map[kind]typeInfo{
	kString:     {"String", "StringType", "StringAttributeMetadata"},
	kMemo:       {"Memo", "MemoType", "MemoAttributeMetadata"},
	kMoney:      {"Money", "MoneyType", "MoneyAttributeMetadata"},
	kDecimal:    {"Decimal", "DecimalType", "DecimalAttributeMetadata"},
	kInteger:    {"Integer", "IntegerType", "IntegerAttributeMetadata"},
	kDouble:     {"Double", "DoubleType", "DoubleAttributeMetadata"},
	kBigInt:     {"BigInt", "BigIntType", "BigIntAttributeMetadata"},
	kDateTime:   {"DateTime", "DateTimeType", "DateTimeAttributeMetadata"},
	kDateOnly:   {"DateTime", "DateTimeType", "DateTimeAttributeMetadata"},
	kBoolean:    {"Boolean", "BooleanType", "BooleanAttributeMetadata"},
	kPicklist:   {"Picklist", "PicklistType", "PicklistAttributeMetadata"},
	kState:      {"State", "StateType", "StateAttributeMetadata"},
	kStatus:     {"Status", "StatusType", "StatusAttributeMetadata"},
	kLookup:     {"Lookup", "LookupType", "LookupAttributeMetadata"},
	kCustomer:   {"Customer", "CustomerType", "LookupAttributeMetadata"},
	kOwner:      {"Owner", "OwnerType", "LookupAttributeMetadata"},
	kUniqueID:   {"Uniqueidentifier", "UniqueidentifierType", "UniqueIdentifierAttributeMetadata"},
	kEntityName: {"EntityName", "EntityNameType", "EntityNameAttributeMetadata"},
}

func (k kind) isLookup() bool { return k == kLookup || k == kCustomer || k == kOwner }

// option is one choice value. State is the statecode a status option
// belongs to; DefaultStatus the default statuscode of a state option.
type option struct {
	Value         int
	Label         string
	State         int
	DefaultStatus int
}

// optionSet is a choice list; Global ones are shared by name across tables
// and listed in GlobalOptionSetDefinitions.
type optionSet struct {
	Name    string
	Global  bool
	Options []option
}

func (o *optionSet) has(v int) bool {
	for _, opt := range o.Options {
		if opt.Value == v {
			return true
		}
	}
	return false
}

func (o *optionSet) label(v int) (string, bool) {
	for _, opt := range o.Options {
		if opt.Value == v {
			return opt.Label, true
		}
	}
	return "", false
}

// attribute is one column of a table's metadata.
type attribute struct {
	Name      string
	Display   string
	Kind      kind
	MaxLength int
	Precision int
	Min, Max  float64
	Targets   []string
	Options   *optionSet
	// ReadOnly attributes are set by the platform only (createdon,
	// modifiedon, versionnumber).
	ReadOnly bool
	// AttributeOf names the lookup a virtual attribute describes; virtual
	// attributes are metadata only, not properties of the entity type.
	AttributeOf string
	Required    bool

	// Filled by newTable.
	col      int    // index in stored rows, -1 for virtual or versionnumber
	number   int    // ColumnNumber
	property string // Web API property name (_x_value for lookups)
	key      []byte // `,"<property>":`, prefix of the property in a row
	entity   string
	id       uuid.UUID
}

// table is one entity of the emulated environment.
type table struct {
	Name           string
	SetName        string
	Display        string
	PrimaryID      string
	PrimaryName    string
	ObjectTypeCode int
	Tracked        bool
	Intersect      bool
	HasCreatedOn   bool
	// Ownership is "UserOwned", "OrganizationOwned", "BusinessOwned" or "None".
	Ownership string
	Attrs     []*attribute

	cols   []*attribute // stored columns in stored order
	byName map[string]*attribute
	byProp map[string]*attribute
	// navs maps single-valued navigation property names (for @odata.bind)
	// to the lookup attribute and the target table.
	navs map[string]navProp
	id   uuid.UUID
	// idBase holds the fixed bytes of the table's sequential ids.
	idBase uuid.UUID
}

type navProp struct {
	attr   *attribute
	target string
}

// metadataNS derives stable MetadataIds from names, so metadata is the same
// in every run and golden files can hold it.
var metadataNS = uuid.MustParse("5e0a4c1e-7a1c-4b6e-9d4a-1a2b3c4d5e6f")

func newTable(t *table) *table {
	t.byName = map[string]*attribute{}
	t.byProp = map[string]*attribute{}
	t.navs = map[string]navProp{}
	t.id = uuid.NewSHA1(metadataNS, []byte("entity/"+t.Name))
	for i, a := range t.Attrs {
		a.number = i + 1
		a.entity = t.Name
		a.id = uuid.NewSHA1(metadataNS, []byte("attribute/"+t.Name+"/"+a.Name))
		a.col = -1
		a.property = a.Name
		if a.Kind.isLookup() {
			a.property = "_" + a.Name + "_value"
			if len(a.Targets) == 1 {
				t.navs[a.Name] = navProp{a, a.Targets[0]}
			} else {
				for _, target := range a.Targets {
					t.navs[a.Name+"_"+target] = navProp{a, target}
				}
			}
		}
		a.key = []byte(`,"` + a.property + `":`)
		t.byName[a.Name] = a
		if a.AttributeOf == "" && a.Name != "versionnumber" {
			a.col = len(t.cols)
			t.cols = append(t.cols, a)
		}
		if a.AttributeOf == "" {
			t.byProp[a.property] = a
		}
	}
	return t
}

// entityType is the OData type name used in error messages.
func (t *table) entityType() string { return "Microsoft.Dynamics.CRM." + t.Name }

// Choice lists. Values and labels follow the Dynamics 365 Sales defaults.
var (
	activeState  = []option{{Value: 0, Label: "Active", DefaultStatus: 1}, {Value: 1, Label: "Inactive", DefaultStatus: 2}}
	activeStatus = []option{{Value: 1, Label: "Active", State: 0}, {Value: 2, Label: "Inactive", State: 1}}

	industry = &optionSet{Name: "account_industrycode", Options: []option{
		{Value: 1, Label: "Accounting"}, {Value: 2, Label: "Agriculture and Non-petrol Natural Resource Extraction"},
		{Value: 3, Label: "Broadcasting Printing and Publishing"}, {Value: 4, Label: "Brokers"},
		{Value: 5, Label: "Building Supply Retail"}, {Value: 6, Label: "Business Services"},
		{Value: 7, Label: "Consulting"}, {Value: 8, Label: "Consumer Services"},
		{Value: 9, Label: "Design, Direction and Creative Management"}, {Value: 10, Label: "Distributors, Dispatchers and Processors"},
		{Value: 11, Label: "Doctor's Offices and Clinics"}, {Value: 12, Label: "Durable Manufacturing"},
	}}
	customerType = &optionSet{Name: "account_customertypecode", Options: []option{
		{Value: 1, Label: "Competitor"}, {Value: 2, Label: "Consultant"}, {Value: 3, Label: "Customer"},
		{Value: 4, Label: "Investor"}, {Value: 5, Label: "Partner"}, {Value: 6, Label: "Influencer"},
		{Value: 7, Label: "Press"}, {Value: 8, Label: "Prospect"}, {Value: 9, Label: "Reseller"},
		{Value: 10, Label: "Supplier"}, {Value: 11, Label: "Vendor"}, {Value: 12, Label: "Other"},
	}}
	gender       = &optionSet{Name: "contact_gendercode", Options: []option{{Value: 1, Label: "Male"}, {Value: 2, Label: "Female"}}}
	familyStatus = &optionSet{Name: "contact_familystatuscode", Options: []option{
		{Value: 1, Label: "Single"}, {Value: 2, Label: "Married"}, {Value: 3, Label: "Divorced"}, {Value: 4, Label: "Widowed"},
	}}
	leadSource = &optionSet{Name: "lead_leadsourcecode", Options: []option{
		{Value: 1, Label: "Advertisement"}, {Value: 2, Label: "Employee Referral"}, {Value: 3, Label: "External Referral"},
		{Value: 4, Label: "Partner"}, {Value: 5, Label: "Public Relations"}, {Value: 6, Label: "Seminar"},
		{Value: 7, Label: "Trade Show"}, {Value: 8, Label: "Web"}, {Value: 9, Label: "Word of Mouth"}, {Value: 10, Label: "Other"},
	}}
	// rating is shared by lead and opportunity, as a global choice.
	rating = &optionSet{Name: "lakelink_rating", Global: true, Options: []option{
		{Value: 1, Label: "Hot"}, {Value: 2, Label: "Warm"}, {Value: 3, Label: "Cold"},
	}}
	salesStage = &optionSet{Name: "opportunity_salesstage", Options: []option{
		{Value: 0, Label: "Qualify"}, {Value: 1, Label: "Develop"}, {Value: 2, Label: "Propose"}, {Value: 3, Label: "Close"},
	}}
)

func stateSet(entity string, opts []option) *optionSet {
	return &optionSet{Name: entity + "_statecode", Options: opts}
}

func statusSet(entity string, opts []option) *optionSet {
	return &optionSet{Name: entity + "_statuscode", Options: opts}
}

func str(name, display string, max int) *attribute {
	return &attribute{Name: name, Display: display, Kind: kString, MaxLength: max}
}

func memo(name, display string, max int) *attribute {
	return &attribute{Name: name, Display: display, Kind: kMemo, MaxLength: max}
}

func money(name, display string) *attribute {
	return &attribute{Name: name, Display: display, Kind: kMoney, Precision: 2, Min: -922337203685477, Max: 922337203685477}
}

func integer(name, display string, min, max float64) *attribute {
	return &attribute{Name: name, Display: display, Kind: kInteger, Min: min, Max: max}
}

func lookup(name, display string, targets ...string) *attribute {
	return &attribute{Name: name, Display: display, Kind: kLookup, Targets: targets}
}

func choice(name, display string, set *optionSet) *attribute {
	return &attribute{Name: name, Display: display, Kind: kPicklist, Options: set}
}

// system returns the attributes every user-owned table has.
func system(entity string, states, statuses []option) []*attribute {
	return []*attribute{
		{Name: "ownerid", Display: "Owner", Kind: kOwner, Targets: []string{"systemuser"}, Required: true},
		{Name: "owneridname", Display: "Owner name", Kind: kString, MaxLength: 100, AttributeOf: "ownerid", ReadOnly: true},
		{Name: "owneridtype", Display: "Owner type", Kind: kEntityName, AttributeOf: "ownerid", ReadOnly: true},
		{Name: "statecode", Display: "Status", Kind: kState, Options: stateSet(entity, states), Required: true},
		{Name: "statuscode", Display: "Status Reason", Kind: kStatus, Options: statusSet(entity, statuses)},
		{Name: "createdon", Display: "Created On", Kind: kDateTime, ReadOnly: true},
		{Name: "modifiedon", Display: "Modified On", Kind: kDateTime, ReadOnly: true},
		{Name: "versionnumber", Display: "Version Number", Kind: kBigInt, ReadOnly: true, Min: -9223372036854775808, Max: 9223372036854775807},
	}
}

func attrs(groups ...[]*attribute) []*attribute {
	var all []*attribute
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// catalog builds the environment's tables, in EntityDefinitions order.
// Each call returns fresh values, so emulators never share state.
func catalog() []*table {
	account := newTable(&table{
		Name: "account", SetName: "accounts", Display: "Account", PrimaryID: "accountid", PrimaryName: "name",
		ObjectTypeCode: 1, Tracked: true, HasCreatedOn: true, Ownership: "UserOwned",
		Attrs: attrs([]*attribute{
			{Name: "accountid", Display: "Account", Kind: kUniqueID},
			str("name", "Account Name", 160),
			str("accountnumber", "Account Number", 20),
			str("emailaddress1", "Email", 100),
			str("telephone1", "Main Phone", 50),
			str("websiteurl", "Website", 200),
			str("address1_line1", "Address 1: Street 1", 250),
			str("address1_city", "Address 1: City", 80),
			str("address1_postalcode", "Address 1: ZIP/Postal Code", 20),
			str("address1_country", "Address 1: Country/Region", 80),
			{Name: "address1_latitude", Display: "Address 1: Latitude", Kind: kDouble, Precision: 5, Min: -90, Max: 90},
			{Name: "address1_longitude", Display: "Address 1: Longitude", Kind: kDouble, Precision: 5, Min: -180, Max: 180},
			money("revenue", "Annual Revenue"),
			money("creditlimit", "Credit Limit"),
			integer("numberofemployees", "Number of Employees", 0, 1000000000),
			choice("industrycode", "Industry", industry),
			choice("customertypecode", "Relationship Type", customerType),
			{Name: "donotemail", Display: "Do not allow Emails", Kind: kBoolean},
			memo("description", "Description", 2000),
			lookup("primarycontactid", "Primary Contact", "contact"),
		}, system("account", activeState, activeStatus)),
	})
	contact := newTable(&table{
		Name: "contact", SetName: "contacts", Display: "Contact", PrimaryID: "contactid", PrimaryName: "fullname",
		ObjectTypeCode: 2, Tracked: true, HasCreatedOn: true, Ownership: "UserOwned",
		Attrs: attrs([]*attribute{
			{Name: "contactid", Display: "Contact", Kind: kUniqueID},
			str("fullname", "Full Name", 160),
			str("firstname", "First Name", 50),
			str("lastname", "Last Name", 50),
			str("emailaddress1", "Email", 100),
			str("telephone1", "Business Phone", 50),
			str("mobilephone", "Mobile Phone", 50),
			str("jobtitle", "Job Title", 100),
			str("address1_city", "Address 1: City", 80),
			str("address1_country", "Address 1: Country/Region", 80),
			{Name: "address1_latitude", Display: "Address 1: Latitude", Kind: kDouble, Precision: 5, Min: -90, Max: 90},
			{Name: "birthdate", Display: "Birthday", Kind: kDateOnly},
			choice("gendercode", "Gender", gender),
			choice("familystatuscode", "Marital Status", familyStatus),
			integer("numberofchildren", "No. of Children", 0, 1000000000),
			money("annualincome", "Annual Income"),
			{Name: "creditlimit", Display: "Credit Limit", Kind: kDecimal, Precision: 4, Min: 0, Max: 100000000000},
			{Name: "donotemail", Display: "Do not allow Emails", Kind: kBoolean},
			memo("description", "Description", 2000),
			{Name: "parentcustomerid", Display: "Company Name", Kind: kCustomer, Targets: []string{"account", "contact"}},
			{Name: "parentcustomeridname", Display: "Company name", Kind: kString, MaxLength: 160, AttributeOf: "parentcustomerid", ReadOnly: true},
			{Name: "parentcustomeridtype", Display: "Company type", Kind: kEntityName, AttributeOf: "parentcustomerid", ReadOnly: true},
		}, system("contact", activeState, activeStatus)),
	})
	lead := newTable(&table{
		Name: "lead", SetName: "leads", Display: "Lead", PrimaryID: "leadid", PrimaryName: "fullname",
		ObjectTypeCode: 4, Tracked: true, HasCreatedOn: true, Ownership: "UserOwned",
		Attrs: attrs([]*attribute{
			{Name: "leadid", Display: "Lead", Kind: kUniqueID},
			str("fullname", "Name", 160),
			str("subject", "Topic", 300),
			str("firstname", "First Name", 50),
			str("lastname", "Last Name", 50),
			str("companyname", "Company Name", 100),
			str("emailaddress1", "Email", 100),
			str("telephone1", "Business Phone", 50),
			choice("leadsourcecode", "Lead Source", leadSource),
			choice("leadqualitycode", "Rating", rating),
			money("budgetamount", "Budget Amount"),
			money("revenue", "Annual Revenue"),
			integer("numberofemployees", "No. of Employees", 0, 1000000),
			{Name: "estimatedclosedate", Display: "Est. Close Date", Kind: kDateOnly},
			memo("description", "Description", 2000),
			lookup("parentaccountid", "Existing Account", "account"),
			lookup("parentcontactid", "Existing Contact", "contact"),
		}, system("lead",
			[]option{{Value: 0, Label: "Open", DefaultStatus: 1}, {Value: 1, Label: "Qualified", DefaultStatus: 3}, {Value: 2, Label: "Disqualified", DefaultStatus: 4}},
			[]option{{Value: 1, Label: "New", State: 0}, {Value: 2, Label: "Contacted", State: 0}, {Value: 3, Label: "Qualified", State: 1},
				{Value: 4, Label: "Lost", State: 2}, {Value: 5, Label: "Cannot Contact", State: 2}, {Value: 6, Label: "No Longer Interested", State: 2}, {Value: 7, Label: "Canceled", State: 2}})),
	})
	opportunity := newTable(&table{
		Name: "opportunity", SetName: "opportunities", Display: "Opportunity", PrimaryID: "opportunityid", PrimaryName: "name",
		ObjectTypeCode: 3, Tracked: true, HasCreatedOn: true, Ownership: "UserOwned",
		Attrs: attrs([]*attribute{
			{Name: "opportunityid", Display: "Opportunity", Kind: kUniqueID},
			str("name", "Topic", 300),
			money("estimatedvalue", "Est. Revenue"),
			money("actualvalue", "Actual Revenue"),
			money("budgetamount", "Budget Amount"),
			{Name: "estimatedclosedate", Display: "Est. Close Date", Kind: kDateOnly},
			{Name: "actualclosedate", Display: "Actual Close Date", Kind: kDateOnly},
			integer("closeprobability", "Probability", 0, 100),
			choice("salesstage", "Sales Stage", salesStage),
			choice("opportunityratingcode", "Rating", rating),
			memo("description", "Description", 2000),
			lookup("parentaccountid", "Account", "account"),
			lookup("parentcontactid", "Contact", "contact"),
		}, system("opportunity",
			[]option{{Value: 0, Label: "Open", DefaultStatus: 1}, {Value: 1, Label: "Won", DefaultStatus: 3}, {Value: 2, Label: "Lost", DefaultStatus: 4}},
			[]option{{Value: 1, Label: "In Progress", State: 0}, {Value: 2, Label: "On Hold", State: 0}, {Value: 3, Label: "Won", State: 1},
				{Value: 4, Label: "Canceled", State: 2}, {Value: 5, Label: "Out-Sold", State: 2}})),
	})
	// systemuser is business-owned: no ownerid and no statecode, as in
	// Dataverse; isdisabled says whether the user is active.
	systemuser := newTable(&table{
		Name: "systemuser", SetName: "systemusers", Display: "User", PrimaryID: "systemuserid", PrimaryName: "fullname",
		ObjectTypeCode: 8, Tracked: true, HasCreatedOn: true, Ownership: "BusinessOwned",
		Attrs: []*attribute{
			{Name: "systemuserid", Display: "User", Kind: kUniqueID},
			str("fullname", "Full Name", 200),
			str("firstname", "First Name", 64),
			str("lastname", "Last Name", 64),
			str("internalemailaddress", "Primary Email", 100),
			str("domainname", "User Name", 1024),
			str("title", "Title", 128),
			{Name: "isdisabled", Display: "Status", Kind: kBoolean},
			{Name: "createdon", Display: "Created On", Kind: kDateTime, ReadOnly: true},
			{Name: "modifiedon", Display: "Modified On", Kind: kDateTime, ReadOnly: true},
			{Name: "versionnumber", Display: "Version Number", Kind: kBigInt, ReadOnly: true, Min: -9223372036854775808, Max: 9223372036854775807},
		},
	})
	// accountleads is the intersect table of the account-lead many-to-many
	// relationship: plain ids, no createdon, so the lake keeps it append-only.
	accountleads := newTable(&table{
		Name: "accountleads", SetName: "accountleadscollection", Display: "accountleads", PrimaryID: "accountleadid",
		ObjectTypeCode: 16, Tracked: true, Intersect: true, Ownership: "None",
		Attrs: []*attribute{
			{Name: "accountleadid", Display: "accountleadid", Kind: kUniqueID},
			{Name: "accountid", Display: "accountid", Kind: kUniqueID, Required: true},
			{Name: "leadid", Display: "leadid", Kind: kUniqueID, Required: true},
			{Name: "versionnumber", Display: "Version Number", Kind: kBigInt, ReadOnly: true, Min: -9223372036854775808, Max: 9223372036854775807},
		},
	})
	// competitor has change tracking off: linking it must fail.
	competitor := newTable(&table{
		Name: "competitor", SetName: "competitors", Display: "Competitor", PrimaryID: "competitorid", PrimaryName: "name",
		ObjectTypeCode: 123, Tracked: false, HasCreatedOn: true, Ownership: "OrganizationOwned",
		Attrs: []*attribute{
			{Name: "competitorid", Display: "Competitor", Kind: kUniqueID},
			str("name", "Name", 100),
			str("websiteurl", "Website", 200),
			money("reportedrevenue", "Reported Revenue"),
			memo("strengths", "Strengths", 2000),
			{Name: "createdon", Display: "Created On", Kind: kDateTime, ReadOnly: true},
			{Name: "modifiedon", Display: "Modified On", Kind: kDateTime, ReadOnly: true},
			{Name: "versionnumber", Display: "Version Number", Kind: kBigInt, ReadOnly: true, Min: -9223372036854775808, Max: 9223372036854775807},
		},
	})
	return []*table{account, contact, lead, opportunity, systemuser, accountleads, competitor}
}

// ExtraTableName is the logical name of the i-th extra table (from 0) that
// Config.ExtraTables adds, as a custom table with a publisher prefix.
func ExtraTableName(i int) string { return fmt.Sprintf("lakelink_table%03d", i) }

// ExtraEntitySet is the entity set name of an extra table.
func ExtraEntitySet(name string) string { return name + "s" }

// extraTable is a small custom table, for benchmarks of many tables.
func extraTable(i int) *table {
	name := ExtraTableName(i)
	return newTable(&table{
		Name: name, SetName: ExtraEntitySet(name), Display: fmt.Sprintf("Table %03d", i), PrimaryID: name + "id",
		PrimaryName: "lakelink_name", ObjectTypeCode: 10000 + i, Tracked: true, HasCreatedOn: true, Ownership: "UserOwned",
		Attrs: attrs([]*attribute{
			{Name: name + "id", Display: "Id", Kind: kUniqueID},
			str("lakelink_name", "Name", 100),
			money("lakelink_amount", "Amount"),
			integer("lakelink_count", "Count", 0, 1000000),
			{Name: "lakelink_flag", Display: "Flag", Kind: kBoolean},
		}, system(name, activeState, activeStatus)),
	})
}
