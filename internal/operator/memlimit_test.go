package operator

import "testing"

func TestSoftMemoryLimit(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    int64
		wantSet bool
		wantErr bool
	}{
		{"90% of the container's limit", map[string]string{ContainerMemoryLimitEnv: "201326592"}, 181193932, true, false},
		{"GOMEMLIMIT wins", map[string]string{ContainerMemoryLimitEnv: "201326592", "GOMEMLIMIT": "100MiB"}, 0, false, false},
		{"no limit", map[string]string{}, 0, false, false},
		{"not bytes", map[string]string{ContainerMemoryLimitEnv: "192Mi"}, 0, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, set, err := SoftMemoryLimit(func(name string) string { return tc.env[name] })
			if (err != nil) != tc.wantErr || set != tc.wantSet || got != tc.want {
				t.Errorf("SoftMemoryLimit = %d, %v, %v; want %d, %v, error %v", got, set, err, tc.want, tc.wantSet, tc.wantErr)
			}
		})
	}
}
