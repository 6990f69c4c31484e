package cli

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/surge-operator/surge-operator/internal/surge"
)

const (
	// maxNameLength keeps names to a DNS-1123 label, not the longer
	// subdomain Kubernetes allows for a SurgeEndUser: a label fits wherever
	// a name is copied into a label value, and reads better.
	maxNameLength = 63
	// suffixLength is how much of a user id tells apart people of the same
	// name: the tail of the id, its random part.
	suffixLength = 8
	fallbackName = "user"
)

// baseName is a person's name as a DNS-1123 label: "Zoë O'Brien" becomes
// "zoe-o-brien". Accents are dropped, anything but a letter or digit of
// ASCII separates words, and a name with none of those becomes "user". It
// leaves room for a suffix.
func baseName(u surge.User) string {
	full := norm.NFKD.String(strings.TrimSpace(u.FirstName + " " + u.LastName))
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(full) {
		switch {
		case unicode.Is(unicode.Mn, r):
			// A combining mark left by the decomposition of an accented letter.
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	name := b.String()
	if name == "" {
		return fallbackName
	}
	if limit := maxNameLength - 1 - suffixLength; len(name) > limit {
		name = strings.TrimRight(name[:limit], "-")
	}
	return name
}

// idSuffix is the tail of a user id as label characters: "usr_01k6x7d4m0a9h2c5e8f1g3j6kq" gives "f1g3j6kq".
func idSuffix(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	s := b.String()
	return s[max(0, len(s)-suffixLength):]
}

// uniqueNames names each user, in order, by its base name when no other
// user and no name in taken has it, and otherwise by the base name and the
// tail of its id, so that the names do not depend on the order the users
// come in. taken holds the names of the SurgeEndUsers already in the
// namespace.
func uniqueNames(users []surge.User, taken map[string]bool) []string {
	bases := make([]string, len(users))
	count := map[string]int{}
	for i, u := range users {
		bases[i] = baseName(u)
		count[bases[i]]++
	}
	used := map[string]bool{}
	for name := range taken {
		used[name] = true
	}
	names := make([]string, len(users))
	for i, u := range users {
		name := bases[i]
		if count[name] > 1 || used[name] {
			name += "-" + idSuffix(u.ID)
		}
		for n := 2; used[name]; n++ {
			// Two ids that end alike: a counter, within the length.
			counter := fmt.Sprintf("-%d", n)
			base := bases[i][:min(len(bases[i]), maxNameLength-1-suffixLength-len(counter))]
			name = strings.TrimRight(base, "-") + "-" + idSuffix(u.ID) + counter
		}
		used[name] = true
		names[i] = name
	}
	return names
}
