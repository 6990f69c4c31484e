package cli

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/surge-operator/surge-operator/internal/surge"
)

func TestBaseName(t *testing.T) {
	cases := []struct {
		first, last string
		want        string
	}{
		{"Ada", "Lovelace", "ada-lovelace"},
		{"Zoë", "O'Brien", "zoe-o-brien"},
		{"  José María ", "Núñez-García", "jose-maria-nunez-garcia"},
		{"Ada", "", "ada"},
		{"李", "小龙", "user"},
		{"---", "!!!", "user"},
		{"R2", "D2", "r2-d2"},
		{"ﬁona", "Ⅷ", "fiona-viii"},
		{strings.Repeat("Bartholomew", 6), "Smith", strings.Repeat("bartholomew", 6)[:54]},
		{strings.Repeat("a", 53), "Smith", strings.Repeat("a", 53)},
	}
	for _, tc := range cases {
		got := baseName(surge.User{FirstName: tc.first, LastName: tc.last})
		if got != tc.want {
			t.Errorf("baseName(%q, %q) = %q, want %q", tc.first, tc.last, got, tc.want)
		}
		if problems := validation.IsDNS1123Label(got + "-" + strings.Repeat("x", suffixLength)); len(problems) > 0 {
			t.Errorf("baseName(%q, %q) = %q leaves no room for a suffix: %v", tc.first, tc.last, got, problems)
		}
	}
}

func TestUniqueNames(t *testing.T) {
	users := []surge.User{
		{ID: "usr_01k6x7d4m0a9h2c5e8f1g3j6kq", FirstName: "Ada", LastName: "Lovelace"},
		{ID: "usr_01k6x7d4m0a9h2c5e8f1g3j6kr", FirstName: "Grace", LastName: "Hopper"},
		{ID: "usr_01k6x7d4m0a9h2c5e8f1g3j6ks", FirstName: "ADA", LastName: "lovelace"},
		{ID: "usr_01k6x7d4m0a9h2c5e8f1g3j6kt", FirstName: "Alan", LastName: "Turing"},
		// Ends like the first: the suffix alone does not tell them apart.
		{ID: "usr_99k6x7d4m0a9h2c5e8f1g3j6kq", FirstName: "Ada", LastName: "Lovelace"},
	}
	taken := map[string]bool{"alan-turing": true}
	got := uniqueNames(users, taken)
	want := []string{
		"ada-lovelace-f1g3j6kq",
		"grace-hopper",
		"ada-lovelace-f1g3j6ks",
		"alan-turing-f1g3j6kt",
		"ada-lovelace-f1g3j6kq-2",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("user %s named %q, want %q", users[i].ID, got[i], want[i])
		}
	}

	// The same users in another order keep their names, but for the two
	// whose ids end alike, which the counter tells apart in list order.
	reordered := uniqueNames([]surge.User{users[3], users[2], users[1], users[0]}, taken)
	if reordered[0] != want[3] || reordered[1] != want[2] || reordered[2] != want[1] || reordered[3] != want[0] {
		t.Errorf("names depend on the order: %v", reordered)
	}
}

func TestUniqueNamesStayLabels(t *testing.T) {
	long := strings.Repeat("Maximilian", 10)
	users := []surge.User{
		{ID: "usr_01k6x7d4m0a9h2c5e8f1g3j6kq", FirstName: long},
		{ID: "usr_02k6x7d4m0a9h2c5e8f1g3j6kq", FirstName: long},
		{ID: "usr_03k6x7d4m0a9h2c5e8f1g3j6kq", FirstName: long},
	}
	seen := map[string]bool{}
	for _, name := range uniqueNames(users, nil) {
		if problems := validation.IsDNS1123Label(name); len(problems) > 0 {
			t.Errorf("%q is not a DNS-1123 label: %v", name, problems)
		}
		if seen[name] {
			t.Errorf("%q given twice", name)
		}
		seen[name] = true
	}
}
