package endpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:5433": true, "[::1]:5433": true, "localhost:5433": true, "127.0.0.2:1": true,
		"0.0.0.0:5433": false, ":5433": false, "10.0.0.1:5433": false, "[::]:5433": false, "example.com:5433": false} {
		if err := CheckListen(addr, nil); (err == nil) != ok {
			t.Errorf("%s without users: %v", addr, err)
		}
		if err := CheckListen(addr, Users{"a": "b"}); err != nil {
			t.Errorf("%s with users: %v", addr, err)
		}
	}
}

// TestGate: MaxQueries run, MaxQueued wait, one more is refused at once;
// a waiter whose context ends leaves the queue.
func TestGate(t *testing.T) {
	g := NewGate(1, 1)
	leave, err := g.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := g.Enter(context.Background())
		if err == nil {
			l()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	var busy *BusyError
	if _, err := g.Enter(context.Background()); !errors.As(err, &busy) {
		t.Errorf("third: got %v, want a BusyError", err)
	}
	leave()
	if err := <-got; err != nil {
		t.Errorf("the waiter: %v", err)
	}
	leave, _ = g.Enter(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter whose context ends: %v", err)
	}
	if _, err := g.Enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the queue has room again: %v", err)
	}
	leave()
}

func TestReadUsers(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "users")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	u, err := ReadUsers(write("# readers\nann:s3:cret\n\nbob:pw\n"))
	if err != nil || len(u) != 2 || u["ann"] != "s3:cret" || u["bob"] != "pw" {
		t.Errorf("got %v, %v", u, err)
	}
	for _, bad := range []string{"ann\n", ":pw\n", "# nobody\n"} {
		if _, err := ReadUsers(write(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if u, err := ReadUsers(""); u != nil || err != nil {
		t.Errorf("no file: %v %v", u, err)
	}
}
