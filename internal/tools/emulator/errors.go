package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// apiError is an error the Web API answers with: an HTTP status and the OData
// error body Dataverse sends, {"error":{"code":"0x...","message":"..."}}.
// The codes are Dataverse's own hexadecimal error codes, so a client that
// matches on them behaves against the emulator as against the service.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Dataverse error codes the emulator answers with (docs.microsoft.com,
// "Web service error codes").
const (
	codeObjectDoesNotExist  = "0x80040217" // record not found
	codeDuplicateRecord     = "0x80040237" // a record with matching key exists
	codeQueryBuilder        = "0x80060888" // malformed or unsupported query (OData URI parser)
	codeResourceNotFound    = "0x8006088a" // unknown path segment / entity set
	codeAttributeLength     = "0x80044331" // string longer than MaxLength
	codeValueOutOfRange     = "0x8004431a" // number or choice outside its range
	codeInvalidArgument     = "0x80040203" // malformed body value
	codeNotTracked          = "0x80072491" // ChangeTrackingNotEnabledForEntity
	codeExpiredVersionStamp = "0x80044352" // ExpiredVersionStamp: delta token too old
	codeThrottled           = "0x80072322" // service protection: number of requests
	codeUnexpected          = "0x80040216" // generic server error
	codeMethodNotAllowed    = "0x80060891"
)

func errNotFound(entity, id string) *apiError {
	return &apiError{http.StatusNotFound, codeObjectDoesNotExist,
		fmt.Sprintf("Entity '%s' With Id = %s Does Not Exist", entity, id)}
}

func errSegment(segment string) *apiError {
	return &apiError{http.StatusNotFound, codeResourceNotFound,
		fmt.Sprintf("Resource not found for the segment '%s'.", segment)}
}

func errQuery(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, codeQueryBuilder, fmt.Sprintf(format, args...)}
}

func errNoProperty(name, typeName string) *apiError {
	return errQuery("Could not find a property named '%s' on type '%s'.", name, typeName)
}

// errExpiredToken is what Dataverse answers to a delta token older than the
// organization's change-tracking retention: ExpiredVersionStamp, the same
// error RetrieveEntityChanges raises. A client re-initialises the table.
func errExpiredToken() *apiError {
	return &apiError{http.StatusBadRequest, codeExpiredVersionStamp,
		"Version stamp associated with the client has expired. Please perform a full sync."}
}

// writeError writes err as an OData error body. Errors that are not API
// errors are internal: they answer 500 with the message, which only the
// emulator's own bugs or a broken state directory produce.
func writeError(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = &apiError{http.StatusInternalServerError, codeUnexpected, err.Error()}
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
	h := w.Header()
	h.Set("Content-Type", "application/json; odata.metadata=minimal")
	h.Set("OData-Version", "4.0")
	w.WriteHeader(ae.Status)
	_, _ = w.Write(body)
}
