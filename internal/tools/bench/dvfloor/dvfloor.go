// Package dvfloor measures the floor `lakelink bench` and the Dataverse
// connector's benchmarks compare the connector's Copy with: a plain paging
// loop over the same change-tracking read. It is tooling, not product:
// nothing on a link's path imports it. It imports the standard library
// only, so that the connector's own test files can use it.
package dvfloor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// RawPageThrough is a plain paging loop over the change-tracking read Copy
// makes (all columns, pages of pageSize), which only counts rows. No
// conversion, no batches, no rate limit, no retries: what the connector's
// Copy costs above it is the connector's overhead. url is the environment
// URL (the Web API is under url + "/api/data/v9.2/"); client must add any
// authentication itself (nil means http.DefaultClient, for an emulator
// without token).
func RawPageThrough(ctx context.Context, url string, entitySet string, pageSize int, client *http.Client) (rows int64, err error) {
	if client == nil {
		client = http.DefaultClient
	}
	next := strings.TrimRight(url, "/") + "/api/data/v9.2/" + entitySet
	for next != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return rows, fmt.Errorf("raw page read of %s: %w", entitySet, err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("OData-Version", "4.0")
		req.Header.Set("Prefer", "odata.track-changes,odata.maxpagesize="+strconv.Itoa(pageSize))
		resp, err := client.Do(req)
		if err != nil {
			return rows, fmt.Errorf("raw page read of %s: %w", entitySet, err)
		}
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return rows, fmt.Errorf("raw page read of %s: GET %s: HTTP %d: %s", entitySet, next, resp.StatusCode, strings.TrimSpace(string(msg)))
		}
		var body struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return rows, fmt.Errorf("raw page read of %s: decoding %s: %w", entitySet, next, err)
		}
		rows += int64(len(body.Value))
		next = body.NextLink
	}
	return rows, nil
}
