package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/store"
)

// lakeFlags names a lake by its link profile (-c) or by its folder or URL
// (--lake), for the commands that only read or remove a lake.
type lakeFlags struct {
	profile string
	lake    string
}

func (f *lakeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.profile, "config", "c", "", "link profile (YAML)")
	cmd.Flags().StringVar(&f.lake, "lake", "", "lake folder or URL (file:///srv/lake), in place of a profile")
	cmd.MarkFlagsMutuallyExclusive("config", "lake")
}

// open returns the lake's store and the profile, which is nil when the lake
// was named by --lake. Package link registers the stores either may name.
func (f *lakeFlags) open(ctx context.Context) (store.Store, *config.Link, error) {
	if f.lake != "" {
		st, err := store.Open(ctx, f.lake)
		return st, nil, err
	}
	if f.profile == "" {
		return nil, nil, errors.New("name the lake: -c link.yaml or --lake DIR")
	}
	p, err := config.Load(f.profile)
	if err != nil {
		return nil, nil, err
	}
	st, err := link.OpenStore(ctx, p)
	return st, p, err
}
