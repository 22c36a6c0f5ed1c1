package emulator

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Sample data is a pure function of (seed, table, index, row counts): row i
// of a table draws from a random stream seeded by (seed, table, i), and
// references to other tables are computed from their ids. So the sample
// rows are never stored: the emulator generates a row whenever it serves
// one that no write has touched, and the state directory holds only the
// changes (db.go). Opening a directory is instant at any scale and the same
// seed and counts give the same rows, ids included.

var (
	firstNames = []string{"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
		"William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Zoë", "José",
		"Søren", "Aiko", "Chen", "Fatima", "Olu", "Ingrid", "Mateo", "Priya", "Liam", "Noor", "Hannah", "Yusuf", "Elena", "Björn"}
	lastNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
		"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "O'Brien",
		"Müller", "Nakamura", "Kowalski", "Dubois", "Rossi", "Andersson", "Nguyen", "Okafor", "Patel", "van der Berg", "Fernández"}
	companyWords = []string{"Contoso", "Fabrikam", "Adventure Works", "Northwind", "Litware", "Tailspin", "Wingtip", "Proseware",
		"Alpine Ski House", "Coho Winery", "Fourth Coffee", "Lucerne Publishing", "Margie's Travel", "Trey Research",
		"Wide World Importers", "Blue Yonder", "Humongous Insurance", "Graphic Design Institute", "School of Fine Art", "Woodgrove"}
	companySuffixes = []string{"Inc.", "Ltd.", "GmbH", "LLC", "S.A.", "Group", "Holdings", "& Co.", "Partners", "Corp."}
	cities          = []struct {
		city, country string
		lat, lon      float64
	}{
		{"Seattle", "United States", 47.60621, -122.33207}, {"Redmond", "United States", 47.67399, -122.12151},
		{"New York", "United States", 40.71278, -74.00597}, {"London", "United Kingdom", 51.50735, -0.12776},
		{"Paris", "France", 48.85661, 2.35222}, {"Berlin", "Germany", 52.52001, 13.40495},
		{"München", "Germany", 48.13513, 11.58198}, {"Tokyo", "Japan", 35.67619, 139.65031},
		{"São Paulo", "Brazil", -23.55052, -46.63331}, {"Sydney", "Australia", -33.86882, 151.20930},
		{"Toronto", "Canada", 43.65323, -79.38318}, {"Mumbai", "India", 19.07598, 72.87766},
		{"Lagos", "Nigeria", 6.52438, 3.37921}, {"Zürich", "Switzerland", 47.37689, 8.54169},
		{"Kraków", "Poland", 50.06465, 19.94498}, {"Reykjavík", "Iceland", 64.14660, -21.94260},
	}
	jobTitles = []string{"Purchasing Manager", "CEO", "CFO", "IT Director", "Sales Representative", "Owner", "Consultant",
		"Head of Operations", "Marketing Lead", "Buyer", "Office Manager", "Engineer"}
	subjects = []string{"Interested in our newer offerings", "Needs a quote for 10 units", "Wants product catalog",
		"Follow up on trade show", "Renewal of the service contract", "Expansion to a new site", "Evaluating a pilot"}
	userTitles = []string{"Sales Manager", "Account Executive", "Sales Representative", "Customer Service Rep", "Marketing Manager"}
	// odd strings exercise CSV quoting, multi-line values and non-BMP text.
	oddNames = []string{`Smith "The Best", Inc.`, "Line one\nLine two, Ltd.", "Café 🚀 Ünïcödé GmbH", `Back\slash, "quoted" & <tagged>`}
)

var (
	epochStart = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	epochEnd   = time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)
)

// counts returns the number of rows generated for each table at scale,
// with the overrides of cfg.
func counts(cfg Config, tables []*table) map[string]int {
	scale := cfg.Scale
	c := map[string]int{
		"systemuser":   min(10+scale/1000, 1000),
		"account":      scale,
		"contact":      scale,
		"lead":         scale,
		"opportunity":  scale,
		"accountleads": max(scale/10, 1),
		"competitor":   25,
	}
	for _, t := range tables {
		if _, ok := c[t.Name]; !ok {
			c[t.Name] = cfg.ExtraRows
		}
	}
	for name, n := range cfg.Counts {
		c[name] = n
	}
	return c
}

// gen generates rows of one table. A gen is not safe for concurrent use;
// each request makes its own.
type gen struct {
	t      *table
	seed   uint64
	n      int
	layout map[string]tableLayout
	pcg    *rand.PCG
	rng    *rand.Rand
	fields [][]byte
}

func newGen(t *table, seed int64, layout map[string]tableLayout) *gen {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", seed, t.Name)
	pcg := rand.NewPCG(0, 0)
	return &gen{t: t, seed: h.Sum64(), n: int(layout[t.Name].Count), layout: layout,
		pcg: pcg, rng: rand.New(pcg), fields: make([][]byte, len(t.cols))}
}

func (g *gen) set(name string, f []byte) { g.fields[g.t.byName[name].col] = f }

func (g *gen) str(name, s string) { g.set(name, appendJSONString(nil, s)) }

// maybe returns false for about one value in ten: those columns stay NULL.
func (g *gen) maybe() bool { return g.rng.IntN(10) != 0 }

func (g *gen) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *gen) ref(table string) uuid.UUID {
	l := g.layout[table]
	return seqID(l.Base, uint64(g.rng.IntN(int(l.Count))))
}

// lookup references a random generated row of target; none if target
// has no generated rows.
func (g *gen) lookup(name, target string) {
	if g.layout[target].Count > 0 {
		g.set(name, lookupField(target, g.ref(target)))
	}
}

func (g *gen) choice(name string) {
	opts := g.t.byName[name].Options.Options
	g.set(name, []byte(strconv.Itoa(opts[g.rng.IntN(len(opts))].Value)))
}

func (g *gen) money(name string, maxCents int64) {
	g.set(name, moneyField(g.rng.Int64N(maxCents)))
}

// createdOn spreads rows over several years in index order, so Year and
// Month partitions are all exercised and ids and createdon grow together.
func (g *gen) createdOn(i int) time.Time {
	span := epochEnd.Sub(epochStart)
	step := span / time.Duration(max(g.n, 1))
	t := epochStart.Add(step*time.Duration(i) + time.Duration(g.rng.Int64N(int64(max(step, time.Second))))).Truncate(time.Second)
	return t
}

func (g *gen) times(i int) {
	if !g.t.HasCreatedOn {
		return
	}
	c := g.createdOn(i)
	m := c.Add(time.Duration(g.rng.Int64N(int64(120 * 24 * time.Hour)))).Truncate(time.Second)
	if m.After(epochEnd) {
		m = epochEnd
	}
	g.set("createdon", appendJSONString(nil, c.Format(dateTimeLayout)))
	g.set("modifiedon", appendJSONString(nil, m.Format(dateTimeLayout)))
}

func (g *gen) state(active int) {
	states := g.t.byName["statecode"].Options.Options
	statuses := g.t.byName["statuscode"].Options.Options
	st := states[0]
	if g.rng.IntN(100) >= active {
		st = states[1+g.rng.IntN(len(states)-1)]
	}
	var matching []option
	for _, o := range statuses {
		if o.State == st.Value {
			matching = append(matching, o)
		}
	}
	g.set("statecode", []byte(strconv.Itoa(st.Value)))
	g.set("statuscode", []byte(strconv.Itoa(matching[g.rng.IntN(len(matching))].Value)))
}

func (g *gen) owner() { g.lookup("ownerid", "systemuser") }

// row fills g.fields with row i and returns its id. The fields stay valid
// until the next call.
func (g *gen) row(i int) uuid.UUID {
	clear(g.fields)
	g.pcg.Seed(g.seed, uint64(i))
	id := seqID(g.layout[g.t.Name].Base, uint64(i))
	g.set(g.t.PrimaryID, guidField(id))
	g.times(i)
	r := g.rng
	switch g.t.Name {
	case "systemuser":
		first, last := g.pick(firstNames), g.pick(lastNames)
		g.str("firstname", first)
		g.str("lastname", last)
		g.str("fullname", first+" "+last)
		login := strings.ToLower(strings.ReplaceAll(first+"."+last, " ", "")) + strconv.Itoa(i)
		g.str("internalemailaddress", login+"@contoso.onmicrosoft.com")
		g.str("domainname", login+"@contoso.onmicrosoft.com")
		g.str("title", g.pick(userTitles))
		g.set("isdisabled", []byte(strconv.FormatBool(i > 0 && r.IntN(20) == 0)))
	case "account":
		name := g.pick(companyWords) + " " + g.pick(companySuffixes)
		if i%97 == 3 {
			name = oddNames[(i/97)%len(oddNames)]
		}
		g.str("name", name)
		g.str("accountnumber", fmt.Sprintf("ACC-%07d", i))
		c := cities[r.IntN(len(cities))]
		if g.maybe() {
			g.str("emailaddress1", "info"+strconv.Itoa(i)+"@"+strings.ToLower(strings.Fields(name)[0])+".example.com")
		}
		if g.maybe() {
			g.str("telephone1", fmt.Sprintf("+1 555-%04d", r.IntN(10000)))
		}
		g.str("websiteurl", "https://www.example.com/"+strconv.Itoa(i))
		g.str("address1_line1", fmt.Sprintf("%d Main Street", 1+r.IntN(9999)))
		g.str("address1_city", c.city)
		g.str("address1_postalcode", fmt.Sprintf("%05d", r.IntN(100000)))
		g.str("address1_country", c.country)
		if g.maybe() {
			g.set("address1_latitude", strconv.AppendFloat(nil, c.lat, 'f', -1, 64))
			g.set("address1_longitude", strconv.AppendFloat(nil, c.lon, 'f', -1, 64))
		}
		if g.maybe() {
			g.money("revenue", 50_000_000_000_00)
		}
		g.money("creditlimit", 1_000_000_00)
		g.set("numberofemployees", []byte(strconv.Itoa(1+r.IntN(50000))))
		g.choice("industrycode")
		g.choice("customertypecode")
		g.set("donotemail", []byte(strconv.FormatBool(r.IntN(5) == 0)))
		if i%50 == 7 {
			g.str("description", "Key account.\nRenewal due, \"priority\" 🚀\r\nSee notes, page 2.")
		} else if g.maybe() {
			g.str("description", "Account "+strconv.Itoa(i)+" of "+name)
		}
		if g.maybe() {
			g.lookup("primarycontactid", "contact")
		}
		g.owner()
		g.state(90)
	case "contact":
		first, last := g.pick(firstNames), g.pick(lastNames)
		if i%101 == 5 {
			first = "Zoë 🌟"
		}
		g.str("firstname", first)
		g.str("lastname", last)
		g.str("fullname", first+" "+last)
		c := cities[r.IntN(len(cities))]
		if g.maybe() {
			g.str("emailaddress1", strings.ToLower(strings.ReplaceAll(first+"."+last, " ", ""))+strconv.Itoa(i)+"@example.com")
		}
		g.str("telephone1", fmt.Sprintf("+1 555-%04d", r.IntN(10000)))
		if g.maybe() {
			g.str("mobilephone", fmt.Sprintf("+1 555-%04d", r.IntN(10000)))
		}
		g.str("jobtitle", g.pick(jobTitles))
		g.str("address1_city", c.city)
		g.str("address1_country", c.country)
		g.set("address1_latitude", strconv.AppendFloat(nil, c.lat+float64(r.IntN(2000)-1000)/100000, 'f', 5, 64))
		if g.maybe() {
			b := time.Date(1950+r.IntN(55), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
			g.str("birthdate", b.Format(dateOnlyLayout))
		}
		g.choice("gendercode")
		if g.maybe() {
			g.choice("familystatuscode")
		}
		g.set("numberofchildren", []byte(strconv.Itoa(r.IntN(5))))
		if g.maybe() {
			g.money("annualincome", 500_000_00)
		}
		g.set("creditlimit", []byte(fmt.Sprintf("%d.%04d", r.IntN(100000), r.IntN(10000))))
		g.set("donotemail", []byte(strconv.FormatBool(r.IntN(4) == 0)))
		if i%60 == 11 {
			g.str("description", "Met at the fair, said: \"call me\".\nPrefers email, not phone 📧")
		}
		if g.maybe() {
			g.lookup("parentcustomerid", "account")
		}
		g.owner()
		g.state(92)
	case "lead":
		first, last := g.pick(firstNames), g.pick(lastNames)
		g.str("firstname", first)
		g.str("lastname", last)
		g.str("fullname", first+" "+last)
		g.str("subject", g.pick(subjects))
		g.str("companyname", g.pick(companyWords)+" "+g.pick(companySuffixes))
		if g.maybe() {
			g.str("emailaddress1", strings.ToLower(strings.ReplaceAll(first, " ", ""))+strconv.Itoa(i)+"@example.org")
		}
		g.str("telephone1", fmt.Sprintf("+44 20 %04d %04d", r.IntN(10000), r.IntN(10000)))
		g.choice("leadsourcecode")
		g.choice("leadqualitycode")
		if g.maybe() {
			g.money("budgetamount", 1_000_000_00)
		}
		if g.maybe() {
			g.money("revenue", 10_000_000_000_00)
		}
		g.set("numberofemployees", []byte(strconv.Itoa(1+r.IntN(10000))))
		if g.maybe() {
			g.str("estimatedclosedate", g.createdOn(i).AddDate(0, 1+r.IntN(6), 0).Format(dateOnlyLayout))
		}
		if r.IntN(3) == 0 {
			g.lookup("parentaccountid", "account")
		}
		if r.IntN(3) == 0 {
			g.lookup("parentcontactid", "contact")
		}
		g.owner()
		g.state(60)
	case "opportunity":
		g.str("name", g.pick(subjects)+" ("+strconv.Itoa(i)+")")
		g.money("estimatedvalue", 5_000_000_00)
		if g.maybe() {
			g.money("budgetamount", 5_000_000_00)
		}
		g.str("estimatedclosedate", g.createdOn(i).AddDate(0, 1+r.IntN(9), 0).Format(dateOnlyLayout))
		g.set("closeprobability", []byte(strconv.Itoa(r.IntN(101))))
		g.choice("salesstage")
		g.choice("opportunityratingcode")
		if i%40 == 9 {
			g.str("description", "Competes with \"Fabrikam\", decision in Q3,\nneeds exec sponsor")
		}
		g.lookup("parentaccountid", "account")
		if g.maybe() {
			g.lookup("parentcontactid", "contact")
		}
		g.owner()
		g.state(70)
		if string(g.fields[g.t.byName["statecode"].col]) == "1" {
			g.money("actualvalue", 5_000_000_00)
			g.str("actualclosedate", g.createdOn(i).AddDate(0, 2, 0).Format(dateOnlyLayout))
		}
	case "accountleads":
		if g.layout["account"].Count > 0 && g.layout["lead"].Count > 0 {
			g.set("accountid", guidField(g.ref("account")))
			g.set("leadid", guidField(g.ref("lead")))
		}
	case "competitor":
		g.str("name", g.pick(companyWords)+" Rival "+strconv.Itoa(i))
		g.str("websiteurl", "https://rival"+strconv.Itoa(i)+".example.net")
		g.money("reportedrevenue", 1_000_000_000_00)
		g.str("strengths", "Price, reach")
	default: // an extra table
		g.str("lakelink_name", g.pick(companyWords)+" "+strconv.Itoa(i))
		g.money("lakelink_amount", 1_000_000_00)
		g.set("lakelink_count", []byte(strconv.Itoa(r.IntN(1000))))
		g.set("lakelink_flag", []byte(strconv.FormatBool(r.IntN(2) == 0)))
		g.owner()
		g.state(90)
	}
	return id
}

// tableLayout places a table's generated rows: Count rows with ids
// seqID(Base, 0..Count-1) and versions First..First+Count-1.
type tableLayout struct {
	Count uint64    `json:"count"`
	First uint64    `json:"first"`
	Base  uuid.UUID `json:"base"`
}

// newLayout lays out the generated rows of a fresh environment; it returns
// the layout and the environment version after them.
func newLayout(cfg Config, tables []*table) (map[string]tableLayout, uint64) {
	cnt := counts(cfg, tables)
	layout := map[string]tableLayout{}
	version := uint64(0)
	for _, t := range tables {
		n := uint64(cnt[t.Name])
		layout[t.Name] = tableLayout{Count: n, First: version + 1, Base: idBase(cfg.Seed, t.Name)}
		version += n
	}
	return layout, version
}
