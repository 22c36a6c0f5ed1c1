package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client makes changes through the Dataverse Web API, as an application
// using the environment would: the demo and the benchmarks change data with
// it and watch the changes arrive in the lake.
type Client struct {
	URL  string // environment URL, without /api/data/v9.2
	HTTP *http.Client
}

func (c *Client) do(ctx context.Context, method, path string, body any, prefer string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+"/api/data/v9.2/"+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// Create inserts a row into entitySet and returns its id, read from the
// OData-EntityId header.
func (c *Client) Create(ctx context.Context, entitySet string, row map[string]any) (string, error) {
	resp, err := c.do(ctx, http.MethodPost, entitySet, row, "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	loc := resp.Header.Get("OData-EntityId")
	i, j := strings.LastIndex(loc, "("), strings.LastIndex(loc, ")")
	if i < 0 || j < i {
		return "", fmt.Errorf("POST %s: no id in OData-EntityId %q", entitySet, loc)
	}
	return loc[i+1 : j], nil
}

// Update changes columns of the row id.
func (c *Client) Update(ctx context.Context, entitySet, id string, cols map[string]any) error {
	resp, err := c.do(ctx, http.MethodPatch, fmt.Sprintf("%s(%s)", entitySet, id), cols, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Delete removes the row id.
func (c *Client) Delete(ctx context.Context, entitySet, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, fmt.Sprintf("%s(%s)", entitySet, id), nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
