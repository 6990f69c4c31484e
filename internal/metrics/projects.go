package metrics

import "sync"

// maxProjectLabels bounds the project label of the request counters: a
// tenant per project, in a cluster of thousands, would otherwise make
// series without end. The first projects to send requests keep their own
// label; the rest share otherProjects.
const maxProjectLabels = 100

const otherProjects = "other"

// projectLabels gives each key's scope its project label.
var projectLabels = &boundedLabels{limit: maxProjectLabels, kept: map[string]bool{}}

// boundedLabels keeps up to limit values as they are, and names the rest
// otherProjects.
type boundedLabels struct {
	mu    sync.Mutex
	limit int
	kept  map[string]bool
}

func (b *boundedLabels) of(scope string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kept[scope] || scope == ScopeOperatorKey {
		return scope
	}
	if len(b.kept) >= b.limit {
		return otherProjects
	}
	b.kept[scope] = true
	return scope
}

// forget frees the label of a scope that is gone, and reports whether it
// had one.
func (b *boundedLabels) forget(scope string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.kept[scope]
	delete(b.kept, scope)
	return kept
}
