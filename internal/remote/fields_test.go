package remote

import (
	"slices"
	"testing"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

func TestDifferingFields(t *testing.T) {
	desired := Fields{FirstName: "Ada", LastName: "Lovelace", Metadata: map[string]string{
		"team": "analytics", surgev1alpha1.MetadataUID: "uid-1",
	}}
	cases := []struct {
		name    string
		current User
		want    []string
	}{
		{"the same but for the reserved keys", User{FirstName: "Ada", LastName: "Lovelace", Metadata: map[string]string{"team": "analytics"}}, nil},
		{"names and photo", User{FirstName: "Grace", PhotoURL: "https://example.com/g.png", Metadata: map[string]string{"team": "analytics"}}, []string{"firstName", "lastName", "photoURL"}},
		{"a value changed, a key added, a key missing", User{FirstName: "Ada", LastName: "Lovelace", Metadata: map[string]string{"team": "navy", "desk": "3"}}, []string{"metadata.desk", "metadata.team"}},
		{"a key with an empty value is not a missing key", User{FirstName: "Ada", LastName: "Lovelace", Metadata: map[string]string{"team": "analytics", "desk": ""}}, []string{"metadata.desk"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := DifferingFields(tc.current, desired); !slices.Equal(got, tc.want) {
				t.Errorf("differingFields = %q, want %q", got, tc.want)
			}
		})
	}
}
