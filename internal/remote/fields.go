package remote

import (
	"maps"
	"slices"
	"strings"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// FieldsOf is the whole state the user of obj must have: the spec plus the
// reserved keys that tie the user to obj.
func FieldsOf(obj *surgev1alpha1.SurgeEndUser) Fields {
	metadata := make(map[string]string, len(obj.Spec.Metadata)+3)
	maps.Copy(metadata, obj.Spec.Metadata)
	metadata[surgev1alpha1.MetadataUID] = string(obj.UID)
	metadata[surgev1alpha1.MetadataNamespace] = obj.Namespace
	metadata[surgev1alpha1.MetadataName] = obj.Name
	return Fields{
		FirstName: obj.Spec.FirstName,
		LastName:  obj.Spec.LastName,
		PhotoURL:  obj.Spec.PhotoURL,
		Metadata:  metadata,
	}
}

// DifferingFields names the spec fields in which current differs from
// desired, metadata key by key. The reserved keys are left out: the
// operator writes them itself whenever it writes.
func DifferingFields(current User, desired Fields) []string {
	var fields []string
	for _, field := range []struct {
		name           string
		current, wants string
	}{
		{"firstName", current.FirstName, desired.FirstName},
		{"lastName", current.LastName, desired.LastName},
		{"photoURL", current.PhotoURL, desired.PhotoURL},
	} {
		if field.current != field.wants {
			fields = append(fields, field.name)
		}
	}
	keys := append(slices.Collect(maps.Keys(current.Metadata)), slices.Collect(maps.Keys(desired.Metadata))...)
	slices.Sort(keys)
	for _, key := range slices.Compact(keys) {
		if strings.HasPrefix(key, surgev1alpha1.ReservedMetadataPrefix) {
			continue
		}
		currentValue, inCurrent := current.Metadata[key]
		wantedValue, wanted := desired.Metadata[key]
		if inCurrent != wanted || currentValue != wantedValue {
			fields = append(fields, "metadata."+key)
		}
	}
	return fields
}
