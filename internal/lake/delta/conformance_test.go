package delta

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/lakelink/lakelink/internal/store"
)

// TestProtocolConformance checks every action and field of the golden
// table's log against the rules of the Delta PROTOCOL.md (section names
// quoted), reading the raw JSON and Parquet rather than through the
// package's own types. No Delta reader installs here (no Go or npm Delta
// library is served, DuckDB's delta extension cannot be installed offline),
// so this test, with DuckDB and hyparquet reading the data files, is the
// independent proof.
func TestProtocolConformance(t *testing.T) {
	st, _ := newStore(t)
	buildTable(t, st)
	ctx := context.Background()
	objs, err := st.List(ctx, "account/")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, o := range objs {
		sizes[o.Name] = o.Size
	}
	commitRE := regexp.MustCompile(`^account/_delta_log/(\d{20})\.json$`)
	guidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	var partitionCols []string
	schemaFields := map[string]string{}
	live := map[string]map[string]any{}
	version := int64(-1)
	for _, o := range objs {
		m := commitRE.FindStringSubmatch(o.Name)
		if m == nil {
			continue
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		// "Delta Log Entries": contiguous versions, zero-padded to 20 digits.
		if v != version+1 {
			t.Fatalf("version %d follows %d", v, version)
		}
		version = v
		data, _ := store.ReadAll(ctx, st, o.Name)
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<24)
		counts := map[string]int{}
		paths := map[string]bool{}
		for sc.Scan() {
			// "newline-delimited JSON format, where every action is
			// stored as a single-line JSON document"
			var line map[string]map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil || len(line) != 1 {
				t.Fatalf("%s: a line is not one action: %s", o.Name, sc.Bytes())
			}
			for kind, a := range line {
				counts[kind]++
				where := fmt.Sprintf("%s: %s", o.Name, kind)
				switch kind {
				case "protocol":
					// "Protocol Evolution": both versions required;
					// features only at reader 3 / writer 7.
					if a["minReaderVersion"] != float64(1) || a["minWriterVersion"] != float64(2) {
						t.Errorf("%s: versions %v", where, a)
					}
					if a["readerFeatures"] != nil || a["writerFeatures"] != nil {
						t.Errorf("%s: table features below reader 3 / writer 7", where)
					}
				case "metaData":
					// "Change Metadata": id (GUID), format, schemaString,
					// partitionColumns and configuration are required.
					if id, _ := a["id"].(string); !guidRE.MatchString(id) {
						t.Errorf("%s: id %v is not a GUID", where, a["id"])
					}
					f, _ := a["format"].(map[string]any)
					if f["provider"] != "parquet" || f["options"] == nil {
						t.Errorf("%s: format %v", where, f)
					}
					if _, ok := a["configuration"].(map[string]any); !ok {
						t.Errorf("%s: no configuration map", where)
					}
					var schema struct {
						Type   string
						Fields []struct {
							Name     string
							Type     string
							Nullable *bool
							Metadata map[string]any
						}
					}
					if err := json.Unmarshal([]byte(a["schemaString"].(string)), &schema); err != nil || schema.Type != "struct" {
						t.Fatalf("%s: schemaString: %v", where, err)
					}
					// "Schema Serialization Format": names unique
					// regardless of casing; primitive types only.
					schemaFields = map[string]string{}
					seen := map[string]bool{}
					typeRE := regexp.MustCompile(`^(string|long|boolean|double|timestamp|decimal\((\d|[12]\d|3[0-8]),\d+\))$`)
					for _, fl := range schema.Fields {
						if seen[strings.ToLower(fl.Name)] {
							t.Errorf("%s: column %s twice, ignoring case", where, fl.Name)
						}
						seen[strings.ToLower(fl.Name)] = true
						if !typeRE.MatchString(fl.Type) || fl.Nullable == nil || fl.Metadata == nil {
							t.Errorf("%s: field %+v", where, fl)
						}
						schemaFields[fl.Name] = fl.Type
					}
					partitionCols = nil
					for _, p := range a["partitionColumns"].([]any) {
						partitionCols = append(partitionCols, p.(string))
						if schemaFields[p.(string)] != "string" {
							t.Errorf("%s: partition column %v not a string column of the schema", where, p)
						}
					}
				case "txn":
					// "Transaction Identifiers": appId and version required.
					if a["appId"] != AppID || a["version"] == nil {
						t.Errorf("%s: %v", where, a)
					}
				case "commitInfo":
					if a["timestamp"] == nil || a["operation"] == nil {
						t.Errorf("%s: %v", where, a)
					}
				case "add":
					checkAdd(t, st, where, a, partitionCols, schemaFields, sizes)
					p := a["path"].(string)
					if paths[p] {
						t.Errorf("%s: %s twice", where, p)
					}
					paths[p] = true
					live[p] = a
				case "remove":
					// "Add File and Remove File": path, dataChange
					// required; extendedFileMetadata means partitionValues
					// and size are present.
					p, _ := a["path"].(string)
					if _, ok := a["dataChange"].(bool); !ok || a["deletionTimestamp"] == nil {
						t.Errorf("%s: %v", where, a)
					}
					if a["extendedFileMetadata"] == true && (a["partitionValues"] == nil || a["size"] == nil) {
						t.Errorf("%s: extendedFileMetadata without partitionValues and size", where)
					}
					if live[p] == nil {
						t.Errorf("%s: removes %s, which is not in the table", where, p)
					}
					if paths[p] {
						t.Errorf("%s: %s added and removed in one version", where, p)
					}
					delete(live, p)
				default:
					t.Errorf("%s: an action lakelink does not write", where)
				}
			}
		}
		// "The first version of a table must contain a metaData action";
		// "Delta Log Entries": at most one metaData and one protocol.
		if v == 0 && (counts["metaData"] != 1 || counts["protocol"] != 1) {
			t.Errorf("%s: version 0 holds %v", o.Name, counts)
		}
		if counts["metaData"] > 1 || counts["protocol"] > 1 || counts["txn"] > 1 || counts["commitInfo"] != 1 {
			t.Errorf("%s: %v", o.Name, counts)
		}
	}
	if version != 11 {
		t.Fatalf("the table has versions to %d, want 11", version)
	}
	// "Last Checkpoint File Schema": version and size of a checkpoint
	// that exists; "Checkpoints": classic V1 checkpoint at version 10
	// with protocol, metaData, txn and the live files of version 10.
	lc, _ := store.ReadAll(ctx, st, "account/_delta_log/_last_checkpoint")
	var last map[string]any
	if err := json.Unmarshal(lc, &last); err != nil || last["version"] != float64(10) || last["size"] == nil {
		t.Errorf("_last_checkpoint: %s", lc)
	}
	checkCheckpoint(t, st)
}

// checkAdd checks an add action ("Add File and Remove File", "Per-file
// Statistics", "Partition Value Serialization", "Data Files").
func checkAdd(t *testing.T, st store.Store, where string, a map[string]any, partitionCols []string, fields map[string]string, sizes map[string]int64) {
	t.Helper()
	p, _ := a["path"].(string)
	if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "_") || strings.Contains(p, "/_") {
		t.Errorf("%s: path %q is not a relative path in a non-hidden folder", where, p)
	}
	if size, _ := a["size"].(float64); int64(size) != sizes["account/"+p] {
		t.Errorf("%s: size %v, the object has %d bytes", where, a["size"], sizes["account/"+p])
	}
	if mt, _ := a["modificationTime"].(float64); mt <= 0 {
		t.Errorf("%s: modificationTime %v", where, a["modificationTime"])
	}
	if _, ok := a["dataChange"].(bool); !ok {
		t.Errorf("%s: no dataChange", where)
	}
	pv, _ := a["partitionValues"].(map[string]any)
	for _, c := range partitionCols {
		// "Values for all partition columns present in the schema MUST
		// be present for all files in the table."
		v, ok := pv[c].(string)
		if !ok || !regexp.MustCompile(`^(1|\d{4}(-\d{2})?)$`).MatchString(v) || !strings.HasPrefix(p, c+"="+v+"/") {
			t.Errorf("%s: partition value %v of %s, path %s", where, pv[c], c, p)
		}
	}
	var stats struct {
		NumRecords *int64
		MinValues  map[string]any
		MaxValues  map[string]any
		NullCount  map[string]int64
	}
	dec := json.NewDecoder(strings.NewReader(a["stats"].(string)))
	dec.UseNumber()
	if err := dec.Decode(&stats); err != nil || stats.NumRecords == nil {
		t.Fatalf("%s: stats: %v", where, err)
	}
	// The statistics against the file itself, read by DuckDB.
	c, _ := duckdb.NewConnector("", nil)
	db := sql.OpenDB(c)
	defer db.Close()
	loc := st.Location("account/" + p)
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM read_parquet(?)", loc).Scan(&n); err != nil || n != *stats.NumRecords {
		t.Errorf("%s: numRecords %d, the file has %d rows (%v)", where, *stats.NumRecords, n, err)
	}
	for col, nulls := range stats.NullCount {
		if fields[col] == "" {
			t.Errorf("%s: statistics of %s, not a schema column", where, col)
			continue
		}
		var got int64
		q := fmt.Sprintf(`SELECT count(*) - count("%s") FROM read_parquet(?)`, col)
		if err := db.QueryRow(q, loc).Scan(&got); err != nil || got != nulls {
			t.Errorf("%s: nullCount of %s is %d, the file has %d (%v)", where, col, nulls, got, err)
		}
	}
	for kind, vals := range map[string]map[string]any{"min": stats.MinValues, "max": stats.MaxValues} {
		for col, v := range vals {
			typ := fields[col]
			expr := fmt.Sprintf(`"%s"`, col)
			lit := fmt.Sprintf("%v", v)
			switch {
			case typ == "timestamp":
				// Cut down to the millisecond.
				expr = fmt.Sprintf(`strftime(date_trunc('millisecond', "%s"::TIMESTAMPTZ AT TIME ZONE 'UTC'), '%%Y-%%m-%%dT%%H:%%M:%%S.%%gZ')`, col)
			case typ == "string" && kind == "min":
				expr = fmt.Sprintf(`left("%s", %d)`, col, StringPrefix)
			case strings.HasPrefix(typ, "decimal") || typ == "long" || typ == "double":
				lit = v.(json.Number).String()
				expr = fmt.Sprintf(`CAST("%s" AS VARCHAR)`, col)
			}
			var got sql.NullString
			q := fmt.Sprintf("SELECT CAST(%s(%s) AS VARCHAR) FROM read_parquet(?)", kind, expr)
			if err := db.QueryRow(q, loc).Scan(&got); err != nil {
				t.Fatalf("%s: %s: %v", where, q, err)
			}
			if typ == "long" || typ == "double" || strings.HasPrefix(typ, "decimal") {
				// Compare as numbers: JSON and DuckDB spell them apart.
				var same bool
				db.QueryRow(fmt.Sprintf("SELECT %s(%s) = CAST(? AS %s) FROM read_parquet(?)", kind, fmt.Sprintf(`"%s"`, col), duckTypeOf(typ)), lit, loc).Scan(&same)
				if !same {
					t.Errorf("%s: %sValues of %s is %s, the file's is %s", where, kind, col, lit, got.String)
				}
				continue
			}
			if got.String != lit {
				t.Errorf("%s: %sValues of %s is %q, the file's is %q", where, kind, col, lit, got.String)
			}
		}
	}
	// "Delta Data Type to Parquet Type Mappings": timestamps as INT64
	// TIMESTAMP(isAdjustedToUTC=true, MICROS), decimals as DECIMAL.
	rows, err := db.Query("SELECT name, type, logical_type FROM parquet_schema(?) WHERE name <> 'schema'", loc)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, typ string
		var logical sql.NullString
		if err := rows.Scan(&name, &typ, &logical); err != nil {
			t.Fatal(err)
		}
		want := fields[name]
		switch {
		case want == "timestamp":
			if typ != "INT64" || !strings.Contains(logical.String, "isAdjustedToUTC=1") || !strings.Contains(logical.String, "MICROS") {
				t.Errorf("%s: column %s is %s %s", where, name, typ, logical.String)
			}
		case strings.HasPrefix(want, "decimal"):
			if !strings.Contains(logical.String, "DecimalType") {
				t.Errorf("%s: column %s is %s %s", where, name, typ, logical.String)
			}
		}
	}
}

func duckTypeOf(typ string) string {
	switch typ {
	case "long":
		return "BIGINT"
	case "double":
		return "DOUBLE"
	}
	return strings.ToUpper(typ)
}

// checkCheckpoint reads the checkpoint with DuckDB, an independent Parquet
// reader, and checks its columns and actions ("Checkpoint Schema").
func checkCheckpoint(t *testing.T, st store.Store) {
	t.Helper()
	c, _ := duckdb.NewConnector("", nil)
	db := sql.OpenDB(c)
	defer db.Close()
	loc := st.Location("account/_delta_log/00000000000000000010.checkpoint.parquet")
	var protocols, metas, txns, adds, stats int
	err := db.QueryRow(`SELECT count(protocol), count(metaData), count(txn), count("add"), count("add".stats) FROM read_parquet(?)`, loc).
		Scan(&protocols, &metas, &txns, &adds, &stats)
	if err != nil {
		t.Fatal(err)
	}
	if protocols != 1 || metas != 1 || txns != 1 || adds != 4 || stats != 4 {
		t.Errorf("checkpoint: %d protocol, %d metaData, %d txn, %d add (%d with stats); want 1, 1, 1, 4 (4)", protocols, metas, txns, adds, stats)
	}
	var pv string
	if err := db.QueryRow(`SELECT CAST(map_keys("add".partitionValues) AS VARCHAR) FROM read_parquet(?) WHERE "add" IS NOT NULL LIMIT 1`, loc).Scan(&pv); err != nil || pv != "[PartitionId]" {
		t.Errorf("checkpoint partitionValues keys %q (%v)", pv, err)
	}
}
