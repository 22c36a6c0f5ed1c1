package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/store/local"
)

// lakeFlags names a lake by its link profile (-c) or by its folder (--lake),
// for the commands that only read or remove a lake.
type lakeFlags struct {
	profile string
	dir     string
}

func (f *lakeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.profile, "config", "c", "", "link profile (YAML)")
	cmd.Flags().StringVar(&f.dir, "lake", "", "lake folder, in place of a profile")
	cmd.MarkFlagsMutuallyExclusive("config", "lake")
}

// open returns the lake's store and the profile, which is nil when the lake
// was named by --lake.
func (f *lakeFlags) open() (*local.Store, *config.Link, error) {
	if f.dir != "" {
		st, err := local.New(f.dir)
		return st, nil, err
	}
	if f.profile == "" {
		return nil, nil, errors.New("name the lake: -c link.yaml or --lake DIR")
	}
	p, err := config.Load(f.profile)
	if err != nil {
		return nil, nil, err
	}
	st, err := local.New(p.LakePath())
	return st, p, err
}
