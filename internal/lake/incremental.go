package lake

import "regexp"

// changelogDir holds changelog.info in incremental-update folder mode.
const changelogDir = "Changelog/"

// incrementalRE matches objects inside an incremental-update folder, named
// by the UTC start of its interval with dots for colons.
var incrementalRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}\.[0-9]{2}\.[0-9]{2}Z/`)

func isIncrementalObject(name string) bool { return incrementalRE.MatchString(name) }
