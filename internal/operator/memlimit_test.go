package operator

import (
	"errors"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestContainerMemoryLimit(t *testing.T) {
	cases := []struct {
		name    string
		env     string
		want    uint64
		wantErr bool
	}{
		{"the Deployment's limits.memory", "201326592", 201326592, false},
		{"not bytes", "192Mi", 0, true},
		{"zero", "0", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ContainerMemoryLimit(func(string) string { return tc.env })()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ContainerMemoryLimit = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	// Unset, the cgroup's limit, or none: never an error that would stop
	// the manager.
	if _, err := ContainerMemoryLimit(func(string) string { return "" })(); err != nil && !errors.Is(err, memlimit.ErrNoLimit) {
		t.Errorf("without %s: %v, want the cgroup's limit or ErrNoLimit", ContainerMemoryLimitEnv, err)
	}
}
