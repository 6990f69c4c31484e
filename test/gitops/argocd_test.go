package gitops_test

import (
	"context"
	"os"
	"path/filepath"
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
	// healthCheckDir is laid out as Argo CD's resource_customizations/<group>/<kind>.
	healthCheckDir     = filepath.Join(repoRoot, "config", "argocd", "resource_customizations", "surge.app", "SurgeEndUser")
	healthScriptPath   = filepath.Join(healthCheckDir, "health.lua")
	configMapPatchPath = filepath.Join(repoRoot, "config", "argocd", "argocd-cm-patch.yaml")
	// configMapKey is where argocd-cm holds the health script of a group and kind.
	configMapKey = "resource.customizations.health." + surgev1alpha1.GroupVersion.Group + "_SurgeEndUser"
)

// argoHealth is the health Argo CD shows for a resource.
type argoHealth struct {
	Status  string `json:"status"`
	Message string `json:"message"`
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

// TestArgoCDHealthTestCases runs the cases of health_test.yaml, which
// Argo CD's own test suite reads when the check is contributed upstream, and
// expects the status and message they name, exactly, as Argo CD's does. They
// cover the states the live tests do not reach: no status yet, paused, and
// combinations of conditions.
func TestArgoCDHealthTestCases(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(healthCheckDir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases struct {
		Tests []struct {
			HealthStatus argoHealth `json:"healthStatus"`
			InputPath    string     `json:"inputPath"`
		} `json:"tests"`
	}
	if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
		t.Fatalf("reading health_test.yaml: %v", err)
	}
	covered := map[string]bool{}
	for _, tc := range cases.Tests {
		t.Run(tc.InputPath, func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join(healthCheckDir, tc.InputPath))
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := yaml.Unmarshal(input, &obj); err != nil {
				t.Fatal(err)
			}
			if got := argoCDHealth(t, obj); got != tc.HealthStatus {
				t.Errorf("got %s %q, want %s %q", got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
			}
		})
		covered[tc.HealthStatus.Status] = true
	}
	for _, status := range []string{"Healthy", "Progressing", "Degraded", "Suspended"} {
		if !covered[status] {
			t.Errorf("health_test.yaml has no case for %s", status)
		}
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
