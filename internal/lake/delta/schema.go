package delta

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/lake/parquet"
	"github.com/lakelink/lakelink/internal/schema"
)

// PartitionColumn is the partition column of every lakelink Delta table, as
// Synapse Link's Delta export names it: the row's Synapse partition ("2024"
// for Year, "2024-03" for Month, lake.NoPartition "1" for rows without a
// partition value). Its values live in the log (add.partitionValues) and the
// data files' folder names, not in the files (PROTOCOL.md, "Data Files").
const PartitionColumn = "PartitionId"

// field is a struct field of the schema serialization (PROTOCOL.md,
// "Schema Serialization Format").
type field struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Nullable bool              `json:"nullable"`
	Metadata map[string]string `json:"metadata"`
}

type structType struct {
	Type   string  `json:"type"`
	Fields []field `json:"fields"`
}

// typeName is the Delta primitive type of a lake column.
func typeName(c lake.Column) (string, error) {
	switch c.Type {
	case schema.Guid, schema.String, schema.JSON:
		return "string", nil
	case schema.Int64:
		return "long", nil
	case schema.Boolean:
		return "boolean", nil
	case schema.DateTime, schema.DateTimeOffset:
		return "timestamp", nil
	case schema.Double:
		return "double", nil
	case schema.Decimal:
		p, s, err := parquet.DecimalShape(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("decimal(%d,%d)", p, s), nil
	}
	return "", fmt.Errorf("unknown column type %q", c.Type)
}

// SchemaString returns the Delta schema of a table with layout cols: every
// column but the dropped ones, under its physical name (lake.ColumnNames), all
// nullable, then PartitionColumn. A column dropped at the source leaves the
// Delta schema (a metaData update) while it stays in the lake's layout and
// its old values stay in older files; readers ignore file columns the
// schema lacks (PROTOCOL.md, "Consistency Between Table Metadata and Data
// Files").
func SchemaString(table string, cols []lake.Column) (string, error) {
	names := lake.ColumnNames(cols)
	st := structType{Type: "struct", Fields: []field{}}
	for i, c := range cols {
		if strings.EqualFold(names[i], PartitionColumn) {
			return "", &lake.LayoutError{Table: table, Column: c.Name, Problem: "the name is that of the Delta table's partition column " + PartitionColumn}
		}
		if c.Dropped {
			continue
		}
		t, err := typeName(c)
		if err != nil {
			return "", &lake.LayoutError{Table: table, Column: c.Name, Problem: err.Error()}
		}
		st.Fields = append(st.Fields, field{Name: names[i], Type: t, Nullable: true, Metadata: map[string]string{}})
	}
	st.Fields = append(st.Fields, field{Name: PartitionColumn, Type: "string", Nullable: true, Metadata: map[string]string{}})
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("delta: table %s: %w", table, err)
	}
	return string(b), nil
}
