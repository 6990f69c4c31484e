package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// outputFlag binds -o/--output: empty for the text for people, json or yaml
// for scripts.
func outputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "", "Print as json or yaml instead of text, for scripts.")
}

// validOutput refuses an output format before any call is made.
func validOutput(output string) error {
	switch output {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("unknown --output %q: use json or yaml", output)
}

// printDocument writes doc as json or yaml.
func printDocument(w io.Writer, output string, doc any) error {
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if output == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
	} else {
		data = append(data, '\n')
	}
	_, err = w.Write(data)
	return err
}

// statusDocument is what status prints with -o json or yaml.
type statusDocument struct {
	Namespace      string             `json:"namespace"`
	Name           string             `json:"name"`
	Ready          *metav1.Condition  `json:"ready,omitempty"`
	AccountID      string             `json:"accountID"`
	UserID         string             `json:"userID,omitempty"`
	Project        string             `json:"project"`
	Token          string             `json:"token,omitempty"`
	DeletionPolicy string             `json:"deletionPolicy"`
	WhyNotReady    []string           `json:"whyNotReady,omitempty"`
	Conditions     []metav1.Condition `json:"conditions"`
	Events         []statusEvent      `json:"events"`
}

type statusEvent struct {
	LastSeen time.Time `json:"lastSeen"`
	Type     string    `json:"type"`
	Reason   string    `json:"reason"`
	Count    int32     `json:"count"`
	Note     string    `json:"note"`
}

func newStatusDocument(r *report, now time.Time) statusDocument {
	obj := r.obj
	doc := statusDocument{
		Namespace:      obj.Namespace,
		Name:           obj.Name,
		Ready:          apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady),
		AccountID:      obj.Spec.AccountID,
		UserID:         obj.Status.UserID,
		Project:        projectLine(r),
		DeletionPolicy: string(surgev1alpha1.DeletionPolicyDelete),
		WhyNotReady:    diagnose(r, now),
		Conditions:     obj.Status.Conditions,
		Events:         []statusEvent{},
	}
	if obj.Spec.DeletionPolicy != "" {
		doc.DeletionPolicy = string(obj.Spec.DeletionPolicy)
	}
	if obj.Spec.TokenSecret != nil {
		doc.Token = tokenLine(r, now)
	}
	for _, e := range r.events {
		count := int32(1)
		if e.Series != nil {
			count = e.Series.Count
		}
		doc.Events = append(doc.Events, statusEvent{LastSeen: lastSeen(e), Type: e.Type, Reason: e.Reason, Count: count, Note: e.Note})
	}
	return doc
}

// checkDocument is one line of check, printed with -o json or yaml.
type checkDocument struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}
