package pgwire

import (
	"errors"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/lakelink/lakelink/internal/endpoint"
	"github.com/lakelink/lakelink/internal/sqldb"
)

// writes are the statements refused as writes (SQLSTATE 25006,
// read_only_sql_transaction); other refusals are 42501
// (insufficient_privilege).
var writes = map[string]bool{
	"COPY": true, "EXPORT": true, "IMPORT": true, "INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true,
	"TRUNCATE": true, "CREATE": true, "DROP": true, "ALTER": true, "COMMENT": true,
}

// duckCodes are the SQLSTATEs of DuckDB's error types.
var duckCodes = map[duckdb.ErrorType]string{
	duckdb.ErrorTypeParser:               "42601",
	duckdb.ErrorTypeSyntax:               "42601",
	duckdb.ErrorTypeCatalog:              "42P01",
	duckdb.ErrorTypeBinder:               "42703",
	duckdb.ErrorTypeConversion:           "22P02",
	duckdb.ErrorTypeInvalidInput:         "22P02",
	duckdb.ErrorTypeOutOfRange:           "22003",
	duckdb.ErrorTypeDivideByZero:         "22012",
	duckdb.ErrorTypeMismatchType:         "42804",
	duckdb.ErrorTypeInterrupt:            "57014",
	duckdb.ErrorTypeOutOfMemory:          "53200",
	duckdb.ErrorTypePermission:           "42501",
	duckdb.ErrorTypeNotImplemented:       "0A000",
	duckdb.ErrorTypeParameterNotResolved: "42P18",
}

// toPGError is err as the client sees it, with a SQLSTATE.
func toPGError(err error) *pgError {
	var (
		pe   *pgError
		na   *sqldb.NotAllowedError
		busy *endpoint.BusyError
		de   *duckdb.Error
	)
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &na):
		code := "42501"
		if writes[strings.ToUpper(na.What)] {
			code = "25006"
		}
		return &pgError{code: code, msg: err.Error()}
	case errors.As(err, &busy):
		return &pgError{code: "53000", msg: err.Error()}
	case errors.As(err, &de):
		code, ok := duckCodes[de.Type]
		if !ok {
			code = "XX000"
		}
		return &pgError{code: code, msg: err.Error()}
	}
	return &pgError{code: "XX000", msg: err.Error()}
}
