package gitops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

var (
	healthScriptPath   = filepath.Join(repoRoot, "config", "argocd", "surge.app", "SurgeEndUser", "health.lua")
	configMapPatchPath = filepath.Join(repoRoot, "config", "argocd", "argocd-cm-patch.yaml")
	// configMapKey is where argocd-cm holds the health script of a group and kind.
	configMapKey = "resource.customizations.health." + surgev1alpha1.GroupVersion.Group + "_SurgeEndUser"
)

// argoHealth is the health Argo CD shows for a resource.
type argoHealth struct {
	Status  string
	Message string
}

func readHealthScript(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile(healthScriptPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(script)
}

// argoCDHealth runs the health script on obj the way Argo CD runs a script
// from argocd-cm: in gopher-lua, with only the package, base and table
// libraries, the object as the global obj, and one second to finish.
func argoCDHealth(t *testing.T, obj map[string]any) argoHealth {
	t.Helper()
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			t.Fatalf("opening the Lua %s library: %v", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, obj))
	if err := state.DoString(readHealthScript(t)); err != nil {
		t.Fatalf("the health script failed: %v", err)
	}
	result, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health script returned %s, want a table", state.Get(-1).Type())
	}
	health := argoHealth{
		Status:  lua.LVAsString(result.RawGetString("status")),
		Message: lua.LVAsString(result.RawGetString("message")),
	}
	switch health.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended":
	default:
		t.Fatalf("the health script returned status %q, which Argo CD would show as Unknown", health.Status)
	}
	if health.Message == "" {
		t.Errorf("the health script returned %s without a message", health.Status)
	}
	return health
}

// toLua converts decoded JSON into Lua values as Argo CD does.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		array := state.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(toLua(state, item))
		}
		return array
	case map[string]any:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	}
	return lua.LNil
}

// TestArgoCDHealthOfHandBuiltObjects covers the states the live tests do not
// reach: no status yet, paused, and combinations of conditions.
func TestArgoCDHealthOfHandBuiltObjects(t *testing.T) {
	const metadata = `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {name: ada, namespace: default, generation: 2}
`
	cases := []struct {
		name        string
		object      string
		wantStatus  string
		wantMessage string
	}{{
		name:        "just created, no status",
		object:      metadata,
		wantStatus:  "Progressing",
		wantMessage: "Waiting for the operator",
	}, {
		name: "paused while stalled",
		object: `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {name: ada, namespace: default, generation: 2, annotations: {surge.app/paused: "true"}}
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "False", reason: APIKeyRejected, message: key rejected}
  - {type: Stalled, status: "True", reason: APIKeyRejected, message: key rejected}
`,
		wantStatus:  "Suspended",
		wantMessage: "surge.app/paused",
	}, {
		name: "paused annotation not true",
		object: `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {name: ada, namespace: default, generation: 2, annotations: {surge.app/paused: "false"}}
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "True", reason: Synced, message: in sync}
`,
		wantStatus:  "Healthy",
		wantMessage: "in sync",
	}, {
		name: "stalled on an earlier generation",
		object: metadata + `
status:
  observedGeneration: 1
  conditions:
  - {type: Ready, status: "False", reason: RequestRejected, message: refused}
  - {type: Stalled, status: "True", reason: RequestRejected, message: refused}
`,
		wantStatus:  "Progressing",
		wantMessage: "generation 2",
	}, {
		name: "first attempt failing, no generation observed yet",
		object: metadata + `
status:
  conditions:
  - {type: Ready, status: "False", reason: SurgeUnavailable, message: "failed to create, will retry"}
  - {type: Reconciling, status: "True", reason: SurgeUnavailable, message: "failed to create, will retry"}
`,
		wantStatus:  "Progressing",
		wantMessage: "will retry",
	}, {
		name: "not ready, neither reconciling nor stalled",
		object: metadata + `
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "False", reason: Failing, message: "something is wrong"}
`,
		wantStatus:  "Degraded",
		wantMessage: "something is wrong",
	}, {
		name: "ready while a token renewal fails",
		object: metadata + `
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "True", reason: TokenRenewalFailing, message: "in sync; renewal failing"}
`,
		wantStatus:  "Healthy",
		wantMessage: "renewal failing",
	}, {
		name: "ready unknown",
		object: metadata + `
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: Unknown, reason: Progressing, message: working on it}
`,
		wantStatus:  "Progressing",
		wantMessage: "working on it",
	}, {
		name: "deleted, finalizer held",
		object: `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {name: ada, namespace: default, generation: 2, deletionTimestamp: "2026-01-02T03:04:05Z", finalizers: [surge.app/end-user]}
status:
  observedGeneration: 2
  conditions:
  - {type: Ready, status: "True", reason: Synced, message: in sync}
`,
		wantStatus:  "Progressing",
		wantMessage: "Being deleted",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(tc.object), &obj); err != nil {
				t.Fatal(err)
			}
			got := argoCDHealth(t, obj)
			if got.Status != tc.wantStatus || !strings.Contains(got.Message, tc.wantMessage) {
				t.Errorf("got %s %q, want %s with a message containing %q", got.Status, got.Message, tc.wantStatus, tc.wantMessage)
			}
		})
	}
}

// TestArgoCDConfigMapPatchCarriesTheScript: the argocd-cm patch holds the
// same script as health.lua, under the key Argo CD reads for SurgeEndUsers,
// and patching an existing argocd-cm with it, as kubectl patch does, adds the
// script and keeps the rest.
func TestArgoCDConfigMapPatchCarriesTheScript(t *testing.T) {
	raw, err := os.ReadFile(configMapPatchPath)
	if err != nil {
		t.Fatal(err)
	}
	patch := &corev1.ConfigMap{}
	if err := yaml.UnmarshalStrict(raw, patch); err != nil {
		t.Fatalf("reading %s: %v", configMapPatchPath, err)
	}
	script := readHealthScript(t)
	if got, ok := patch.Data[configMapKey]; !ok {
		t.Fatalf("%s has no %s; keys: %v", configMapPatchPath, configMapKey, keysOf(patch.Data))
	} else if got != script {
		t.Fatalf("the script in %s differs from %s; copy health.lua into the patch", configMapPatchPath, healthScriptPath)
	}

	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: patch.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	existing := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: patch.Name, Namespace: patch.Namespace},
		Data:       map[string]string{"url": "https://argocd.example.com"},
	}
	if err := k8s.Create(ctx, existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, existing) })
	patchJSON, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Patch(ctx, existing, client.RawPatch(types.StrategicMergePatchType, patchJSON)); err != nil {
		t.Fatalf("patching argocd-cm: %v", err)
	}
	if existing.Data[configMapKey] != script || existing.Data["url"] == "" {
		t.Errorf("after the patch argocd-cm holds %v, want the script added to the url", keysOf(existing.Data))
	}
}

func keysOf(data map[string]string) []string {
	keys := make([]string, 0, len(data))
	for key := range data {
		keys = append(keys, key)
	}
	return keys
}
