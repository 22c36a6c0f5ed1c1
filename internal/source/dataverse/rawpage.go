package dataverse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// RawPageThrough is the benchmark floor for `lakelink bench`: a plain paging
// loop over the same change-tracking read Copy makes (all columns, pages of
// pageSize), which only counts rows. No conversion, no batches, no rate
// limit, no retries: what the connector's Copy costs above it is the
// connector's overhead. url is the environment URL; client must add any
// authentication itself (http.DefaultClient for an emulator without token).
func RawPageThrough(ctx context.Context, url string, entitySet string, pageSize int, client *http.Client) (rows int64, err error) {
	base, err := baseURL(url)
	if err != nil {
		return 0, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	next := base + apiPath + entitySet
	for next != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return rows, err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("OData-Version", "4.0")
		req.Header.Set("Prefer", "odata.track-changes,odata.maxpagesize="+strconv.Itoa(pageSize))
		resp, err := client.Do(req)
		if err != nil {
			return rows, fmt.Errorf("raw page read of %s: %w", entitySet, err)
		}
		var body struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if resp.StatusCode != http.StatusOK {
			e := errorFromResponse(entitySet, next, resp)
			resp.Body.Close()
			return rows, e
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return rows, fmt.Errorf("raw page read of %s: decoding %s: %w", entitySet, next, err)
		}
		rows += int64(len(body.Value))
		next = ""
		if body.NextLink != "" {
			rel, err := relativeLink(body.NextLink)
			if err != nil {
				return rows, fmt.Errorf("raw page read of %s: %w", entitySet, err)
			}
			next = base + rel
		}
	}
	return rows, nil
}
