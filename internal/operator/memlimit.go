package operator

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// ContainerMemoryLimitEnv names the environment variable that carries the
// container's memory limit in bytes; the Deployment fills it from
// limits.memory through the downward API.
const ContainerMemoryLimitEnv = "CONTAINER_MEMORY_LIMIT"

// MemoryLimitShare is the part of the container's limit the Go heap may
// grow to before the collector works harder. The rest is memory the limit
// counts and the Go runtime does not steer: goroutine stacks, the binary,
// fragmentation. At the limit itself the collector would run without pause
// just before the kernel kills the process.
const MemoryLimitShare = 0.9

// ContainerMemoryLimit is where automemlimit learns the container's memory
// limit: CONTAINER_MEMORY_LIMIT, which the chart's and config/'s Deployment
// set, else the cgroup's, for a manager run some other way. A cgroup that
// cannot be read means no limit; a variable that is not a number of bytes
// is an error.
func ContainerMemoryLimit(getenv func(string) string) memlimit.Provider {
	return func() (uint64, error) {
		raw := getenv(ContainerMemoryLimitEnv)
		if raw == "" {
			limit, err := memlimit.FromCgroup()
			if err != nil {
				return 0, errors.Join(memlimit.ErrNoLimit, err)
			}
			return limit, nil
		}
		limit, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || limit == 0 {
			return 0, fmt.Errorf("%s=%q is not a number of bytes", ContainerMemoryLimitEnv, raw)
		}
		return limit, nil
	}
}
