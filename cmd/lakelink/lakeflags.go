package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/store"
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

// link loads the profile; nil when --lake was given.
func (f *lakeFlags) link() (*config.Link, error) {
	if f.profile == "" {
		return nil, nil
	}
	return config.Load(f.profile)
}

func (f *lakeFlags) store() (*store.Local, error) {
	dir := f.dir
	if dir == "" {
		if f.profile == "" {
			return nil, errors.New("name the lake: -c link.yaml or --lake DIR")
		}
		p, err := config.Load(f.profile)
		if err != nil {
			return nil, err
		}
		dir = p.LakePath()
	}
	return store.NewLocal(dir)
}
