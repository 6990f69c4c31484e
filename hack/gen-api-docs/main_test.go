package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	apiDir        = filepath.Join("..", "..", "api", "v1alpha1")
	committedDocs = filepath.Join("..", "..", "docs", "api.md")
)

// TestCommittedReferenceIsCurrent fails when the API types changed and
// docs/api.md was not regenerated.
func TestCommittedReferenceIsCurrent(t *testing.T) {
	want, err := generate(apiDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committedDocs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/api.md is stale: run make api-docs and commit it")
	}
}

// TestReferenceStatesTheValidation checks rows of the reference against
// what the markers in api/v1alpha1 make the API server enforce.
func TestReferenceStatesTheValidation(t *testing.T) {
	reference, err := generate(apiDir)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for line := range strings.SplitSeq(string(reference), "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) == 6 {
			rows[cells[1]] = line
		}
	}
	for jsonName, wants := range map[string][]string{
		"`accountID`":       {"| `string` |", "| required |", "at least 6 characters", "at most 64 characters", "accountID must be a Surge account id starting with acct_", "accountID is immutable"},
		"`firstName`":       {"| required |", "not empty", "at most 255 characters"},
		"`lastName`":        {"| optional |"},
		"`deletionPolicy`":  {"[`DeletionPolicy`](#deletionpolicy)", "| optional |", "default `Delete`", "one of `Delete`, `Orphan`"},
		"`durationSeconds`": {"| `int32` |", "default `900`", "minimum 15", "maximum 3600"},
		"`renewBefore`":     {"| `string` |", "format `duration`"},
		"`secretName`":      {"| required |"},
		"`expiresAt`":       {"`string` (date-time)"},
		"`conditions`":      {"`[]metav1.Condition`", "one entry per `type`", "Ready, Reconciling and Stalled"},
	} {
		row, ok := rows[jsonName]
		if !ok {
			t.Errorf("no row for %s", jsonName)
			continue
		}
		for _, want := range wants {
			if !strings.Contains(row, want) {
				t.Errorf("the row of %s lacks %q:\n%s", jsonName, want, row)
			}
		}
	}
	for _, want := range []string{
		"API group `surge.app`, version `v1alpha1`.",
		"| short names | `seu` |",
		"| Ready | `.status.conditions[?(@.type==\"Ready\")].status` | `kubectl get` |",
		"- renewBefore must be at most half the token lifetime (durationSeconds)",
		"| `Orphan` | DeletionPolicyOrphan leaves the end user in Surge. |",
	} {
		if !strings.Contains(string(reference), want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
	if strings.Contains(string(reference), "+kubebuilder") {
		t.Errorf("a marker leaked into the prose of the reference")
	}
}
