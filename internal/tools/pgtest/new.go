package pgtest

// New starts a cluster outside a test (lakelink bench measures against
// one). The caller stops it with Stop.
func New() (*Cluster, error) { return start() }
