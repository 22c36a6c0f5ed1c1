package pgwire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakelink/lakelink/internal/endpoint"
)

// TestSSLRefusedWithoutCert: without a certificate an SSLRequest is
// refused cleanly: sslmode=prefer goes on without TLS, require stops.
func TestSSLRefusedWithoutCert(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	c, err := pgx.Connect(context.Background(), strings.Replace(l.url(""), "sslmode=disable", "sslmode=prefer", 1))
	if err != nil {
		t.Fatalf("sslmode=prefer: %v", err)
	}
	c.Close(context.Background())
	_, err = pgx.Connect(context.Background(), strings.Replace(l.url(""), "sslmode=disable", "sslmode=require", 1))
	if err == nil || !strings.Contains(err.Error(), "refused TLS") {
		t.Errorf("sslmode=require: got %v, want the server's refusal of TLS", err)
	}
}

// TestTLSAndPasswords: with users, passwords are taken over TLS only.
func TestTLSAndPasswords(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	cfg := endpoint.Config{DB: l.db, Name: "sales", Limits: endpoint.DefaultLimits, TLS: selfSigned(t), Users: endpoint.Users{"ann": "s3cret"}}
	addr := serve(t, cfg)
	connect := func(pw, mode string) error {
		c, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://ann:%s@%s/sales?sslmode=%s", pw, addr, mode))
		if err == nil {
			var n int
			err = c.QueryRow(context.Background(), "SELECT count(*) FROM contact").Scan(&n)
			c.Close(context.Background())
		}
		return err
	}
	if err := connect("s3cret", "require"); err != nil {
		t.Errorf("right password over TLS: %v", err)
	}
	for _, tc := range []struct{ pw, mode string }{{"wrong", "require"}, {"s3cret", "disable"}} {
		err := connect(tc.pw, tc.mode)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("password %q, sslmode=%s: got %v, want 28P01", tc.pw, tc.mode, err)
		}
	}
}

// serve runs an endpoint of cfg on a loopback port until the test ends.
func serve(t testing.TB, cfg endpoint.Config) string {
	t.Helper()
	ep, err := endpoint.New("postgres", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
