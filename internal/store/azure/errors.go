package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/lakelink/lakelink/internal/store"
)

// opError is an error of the store: a message that says what failed and
// what to do, and the errors it wraps (the SDK's, and store.ErrNotExist or
// a context error where one applies) for errors.Is and errors.As. Its
// message never quotes a request URL, whose query may hold a SAS token.
type opError struct {
	msg  string
	errs []error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.errs }

// errorCode is the service's error code of err (BlobNotFound,
// AuthorizationPermissionMismatch ...), or "".
func errorCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// maxSkew is how far this machine's clock may be from the service's before
// a refused request is blamed on the clock: the service refuses requests
// signed more than 15 minutes off.
const maxSkew = 5 * time.Minute

var (
	serviceMessage = regexp.MustCompile(`<Message>([^<\n]*)`)
	// credentialError matches the errors of azidentity's credentials,
	// which name themselves ("ManagedIdentityCredential: ...").
	credentialError = regexp.MustCompile(`(?m)^[A-Za-z]+Credential: `)
)

// fail describes err, the failure of op on the object name ("" for the
// container), in terms a user can act on.
func (s *Store) fail(op, name string, err error) error {
	what := fmt.Sprintf("lake %s: %s", s.root, op)
	if name != "" {
		what += " " + name
	}
	wrap := func(reason string, also ...error) error {
		return &opError{msg: what + ": " + reason, errs: append([]error{err}, also...)}
	}
	var (
		re   *azcore.ResponseError
		auth *azidentity.AuthenticationFailedError
		ue   *url.Error
		dns  *net.DNSError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return wrap("canceled")
	case errors.As(err, &re):
		return wrap(s.describe(re), s.sentinel(re)...)
	case errors.As(err, &auth), credentialError.MatchString(err.Error()):
		return wrap(fmt.Sprintf("signing in with %s failed: %s", s.cred, firstLines(err.Error(), 6)))
	case errors.As(err, &dns) && dns.IsNotFound:
		return wrap(fmt.Sprintf("no service answers at %s (%s has no address): check the account name %q in the lake URL, or lake.endpoint", s.cc.URL(), dns.Name, s.account))
	case errors.As(err, &ue):
		// ue.Err without ue.URL, which may hold a SAS token.
		return wrap(fmt.Sprintf("cannot reach the Blob service of %s: %v (retried %d times)", s.account, ue.Err, retry.MaxRetries))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return wrap(fmt.Sprintf("the connection dropped mid-transfer (retried %d times)", retry.MaxRetries))
	}
	return wrap(err.Error())
}

// sentinel returns the store errors a response means.
func (s *Store) sentinel(re *azcore.ResponseError) []error {
	if re.StatusCode == http.StatusNotFound && re.ErrorCode != "ContainerNotFound" {
		return []error{store.ErrNotExist}
	}
	return nil
}

// describe says what a refusal of the service means and what to do.
func (s *Store) describe(re *azcore.ResponseError) string {
	msg := ""
	if m := serviceMessage.FindStringSubmatch(re.Error()); m != nil {
		msg = ": " + strings.TrimSpace(m[1])
	}
	answer := fmt.Sprintf("the service answered %d %s%s", re.StatusCode, re.ErrorCode, msg)
	if skew, ok := clockSkew(re.RawResponse); ok && (re.StatusCode == http.StatusForbidden || re.ErrorCode == "AuthenticationFailed") {
		return fmt.Sprintf("%s; this machine's clock is %s off the service's, and Azure refuses requests signed more than 15 minutes off: set the clock right (NTP)", answer, skew.Round(time.Minute))
	}
	switch {
	case re.ErrorCode == "ContainerNotFound":
		return fmt.Sprintf("the container %q does not exist in the storage account %s: create it (az storage container create --account-name %s --name %s --auth-mode login), or correct the lake URL", s.container, s.account, s.account, s.container)
	case re.StatusCode == http.StatusNotFound:
		return "object does not exist"
	case re.ErrorCode == "AccountIsDisabled":
		return answer + ": enable the storage account " + s.account
	case re.StatusCode == http.StatusForbidden:
		return answer + "; " + s.cred.denied(s.account, s.container)
	case re.ErrorCode == "InvalidBlockList":
		return answer + "; another writer replaced the object while this one staged its blocks: nothing was published, write it again"
	case re.ErrorCode == "ConditionNotMet" && re.StatusCode == http.StatusPreconditionFailed:
		return answer + "; the object was replaced while being read: read it again"
	}
	return answer
}

// clockSkew returns how far this machine's clock is from the service's
// Date header, when that is more than maxSkew.
func clockSkew(resp *http.Response) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, false
	}
	d := time.Since(date)
	if d < 0 {
		d = -d
	}
	return d, d > maxSkew
}

// firstLines returns the first n lines of s, for credential errors whose
// full text is a page long.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, " ")
}

// reader reads a download, describing its errors as fail does.
type reader struct {
	s    *Store
	name string
	r    io.ReadCloser
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.fail("read", r.name, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }
