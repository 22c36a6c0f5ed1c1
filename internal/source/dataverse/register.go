package dataverse

import (
	"context"
	"strings"

	"github.com/lakelink/lakelink/internal/azauth"
	"github.com/lakelink/lakelink/internal/source"
)

func init() { source.Register("dataverse", fromProfile) }

// fromProfile is the connector's constructor for profiles of source.type
// dataverse; package config validated the keys it reads.
func fromProfile(ctx context.Context, p source.Params) (*Source, error) {
	s := p.Profile.Source
	a := s.Auth
	return New(ctx, Config{
		URL: strings.TrimRight(s.URL, "/"),
		Auth: Auth{
			Auth: azauth.Auth{
				TenantID:         a.TenantID,
				ClientID:         a.ClientID,
				ClientSecretEnv:  a.ClientSecretEnv,
				ClientSecretFile: a.ClientSecretFile,
				CertificateFile:  a.CertificateFile,
				ManagedIdentity:  a.ManagedIdentity,
			},
			TokenEnv: a.TokenEnv,
		},
		PageSize:          s.PageSize,
		PollInterval:      s.PollInterval.Duration,
		MaxPollInterval:   s.MaxPollInterval.Duration,
		RequestsPerSecond: s.RequestsPerSecond,
		Events:            p.Events,
		Logger:            p.Logger,
	})
}
