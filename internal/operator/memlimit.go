package operator

import (
	"fmt"
	"strconv"
)

// ContainerMemoryLimitEnv names the environment variable that carries the
// container's memory limit in bytes; the Deployment fills it from
// limits.memory through the downward API.
const ContainerMemoryLimitEnv = "CONTAINER_MEMORY_LIMIT"

// memoryLimitShare is the part of the container's limit the Go heap may
// grow to before the collector works harder. The rest is memory the limit
// counts and the Go runtime does not steer: goroutine stacks, the binary,
// fragmentation. At the limit itself the collector would run without pause
// just before the kernel kills the process.
const memoryLimitShare = 0.9

// SoftMemoryLimit is the Go runtime's memory limit for a container whose
// limit getenv reports, and false when there is none to set: GOMEMLIMIT,
// when set, is the runtime's own and wins.
func SoftMemoryLimit(getenv func(string) string) (int64, bool, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, false, nil
	}
	raw := getenv(ContainerMemoryLimitEnv)
	if raw == "" {
		return 0, false, nil
	}
	limit, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || limit <= 0 {
		return 0, false, fmt.Errorf("%s=%q is not a number of bytes", ContainerMemoryLimitEnv, raw)
	}
	return int64(float64(limit) * memoryLimitShare), true, nil
}
