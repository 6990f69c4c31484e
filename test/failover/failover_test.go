// Package failover_test runs two replicas of the real manager binary with
// leader election against a real API server (envtest) and the Surge emulator
// over HTTP, and takes the leader away in the middle of a mass create: once
// with SIGKILL, as a crash or a lost node does, and once with SIGTERM, as a
// rolling update does. Whatever the timing, every SurgeEndUser must end with
// exactly one remote user of its own.
package failover_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/operatortest"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot = "../.."

	apiKey         = "sk_demo_failover"
	account        = "acct_failover"
	leaseNamespace = operatortest.ManagerNamespace
	usersNamespace = "failover"
	// What a replica logs when it starts campaigning and when it wins.
	campaigningLogLine = "attempting to acquire leader lease"
	acquiredLogLine    = "successfully acquired lease"

	// createLatency slows every POST (user creates and token mints) so that
	// the leader is stopped with creates in flight and most users still to
	// do.
	createLatency = 250 * time.Millisecond
	// terminationGracePeriod is the pod's terminationGracePeriodSeconds in
	// config/manager and the chart: after SIGTERM the kubelet kills the
	// process when this has passed.
	terminationGracePeriod = 45 * time.Second
)

// latestTakeover is the latest a standby can lead after the leader dies.
// A standby polls the Lease every retry period stretched by up to
// leaderelection.JitterFactor. It may see the leader's last renewal one
// such poll late, counts the lease duration from then, and notices the
// expiry one poll later still.
var latestTakeover = operator.DefaultLeaseDuration +
	2*time.Duration(float64(operator.DefaultRetryPeriod)*(1+leaderelection.JitterFactor))

// TestFailover: the leader is killed during a mass create and the standby
// finishes the work; then the new leader is terminated during another one,
// releases the Lease and exits in time, and a third replica finishes. No
// remote user is created twice and none is left without its resource.
func TestFailover(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run through make test, which builds envtest's binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := startEnvironment(t)

	first := env.startManager(t, "first")
	first.waitForLeadership(t, 30*time.Second)
	second := env.startManager(t, "second")
	// The second replica is running and has found the Lease taken.
	env.waitForManagerStarted(t, second)

	created := env.createEndUsers(ctx, t, "crash", 150)
	env.waitForRecordedUsers(ctx, t, created, 30)
	killedAt := time.Now()
	first.kill(t)
	second.waitForLeadership(t, latestTakeover+5*time.Second)
	takeover := second.leaderSince().Sub(killedAt)
	env.waitForConvergence(ctx, t, created)
	t.Logf("SIGKILL of the leader: the standby led %s after the kill, all %d users converged %s after it",
		takeover.Round(100*time.Millisecond), len(created), time.Since(killedAt).Round(100*time.Millisecond))
	if takeover > latestTakeover {
		t.Errorf("the standby took over %s after the leader was killed, later than the lease settings allow (%s)", takeover, latestTakeover)
	}
	env.expectOneRemoteUserEach(ctx, t)

	third := env.startManager(t, "third")
	env.waitForManagerStarted(t, third)
	created = append(created, env.createEndUsers(ctx, t, "rollout", 60)...)
	env.waitForRecordedUsers(ctx, t, created, 150+15)
	terminatedAt := time.Now()
	exitCode := second.terminate(t)
	exitedAfter := time.Since(terminatedAt)
	if exitedAfter > terminationGracePeriod {
		t.Errorf("the leader exited %s after SIGTERM, after the grace period of %s: the kubelet would have killed it", exitedAfter, terminationGracePeriod)
	}
	if exitCode != 0 {
		t.Errorf("the leader exited with status %d after SIGTERM, want 0; log: %s", exitCode, second.logPath)
	}
	third.waitForLeadership(t, operator.DefaultLeaseDuration)
	handover := third.leaderSince().Sub(terminatedAt)
	env.waitForConvergence(ctx, t, created)
	t.Logf("SIGTERM of the leader: it exited in %s, the standby led %s after the signal, all %d users converged %s after it",
		exitedAfter.Round(100*time.Millisecond), handover.Round(100*time.Millisecond), len(created), time.Since(terminatedAt).Round(100*time.Millisecond))
	// Without the release the standby would wait out the lease duration.
	if handover >= operator.DefaultLeaseDuration/2 {
		t.Errorf("the standby took over %s after SIGTERM: the leader did not release the Lease", handover)
	}
	env.expectOneRemoteUserEach(ctx, t)
}

// environment is the API server, the emulator and the manager binary.
type environment struct {
	k8s        client.Client
	surge      *emulator.Server
	surgeURL   string
	kubeconfig string
	binary     string
	logDir     string
}

func startEnvironment(t *testing.T) *environment {
	t.Helper()
	logf.SetLogger(logr.Discard())
	dir := t.TempDir()
	env := &environment{binary: filepath.Join(dir, "manager"), logDir: dir}
	build := exec.Command("go", "build", "-o", env.binary, ".")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}

	testEnv := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() { _ = testEnv.Stop() })
	if env.k8s, err = client.New(cfg, client.Options{Scheme: operator.Scheme()}); err != nil {
		t.Fatal(err)
	}
	// The replicas act as the manager's ServiceAccount, with the RBAC
	// config/rbac ships: leader election needs its Role in leaseNamespace.
	rbac, err := operatortest.ReadManagerRBAC(leaseNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.Install(context.Background(), cfg, env.k8s); err != nil {
		t.Fatal(err)
	}
	env.kubeconfig = filepath.Join(dir, "kubeconfig")
	writeImpersonatingKubeconfig(t, testEnv, env.kubeconfig, operatortest.ServiceAccountUser(rbac.ServiceAccount))
	if err := env.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: usersNamespace}}); err != nil {
		t.Fatal(err)
	}

	env.surge = emulator.New(emulator.Options{APIKey: apiKey, Accounts: []string{account}})
	env.surge.InjectFault(emulator.Fault{Method: "POST", Latency: createLatency})
	server := httptest.NewServer(env.surge)
	t.Cleanup(server.Close)
	env.surgeURL = server.URL
	return env
}

// writeImpersonatingKubeconfig writes a kubeconfig for a user allowed to
// impersonate, which acts as user: what --kubeconfig gives the binary.
func writeImpersonatingKubeconfig(t *testing.T, testEnv *envtest.Environment, path, user string) {
	t.Helper()
	admin, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "failover-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("creating the replicas' user: %v", err)
	}
	raw, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := clientcmd.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range kubeconfig.AuthInfos {
		auth.Impersonate = user
	}
	if err := clientcmd.WriteToFile(*kubeconfig, path); err != nil {
		t.Fatal(err)
	}
}

// managerProcess is one replica: the real binary, as a Deployment runs it.
type managerProcess struct {
	name    string
	cmd     *exec.Cmd
	logPath string

	mu        sync.Mutex
	started   chan struct{}
	acquired  chan struct{}
	leaderAt  time.Time
	exited    chan struct{}
	exitState *os.ProcessState
}

// startManager starts a replica; extraArgs come after the defaults below,
// and a flag given twice takes the later value.
func (e *environment) startManager(t *testing.T, name string, extraArgs ...string) *managerProcess {
	t.Helper()
	m := &managerProcess{
		name:     name,
		logPath:  filepath.Join(e.logDir, name+".log"),
		started:  make(chan struct{}),
		acquired: make(chan struct{}),
		exited:   make(chan struct{}),
	}
	logFile, err := os.Create(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(e.binary,
		"--kubeconfig="+e.kubeconfig,
		"--surge-api-url="+e.surgeURL,
		"--leader-elect",
		"--leader-election-namespace="+leaseNamespace,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		"--surge-requests-per-second=-1",
	)
	m.cmd.Args = append(m.cmd.Args, extraArgs...)
	m.cmd.Env = append(os.Environ(), "SURGE_API_KEY="+apiKey)
	// A test that dies leaves no replica behind.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.cmd.Stdout = logFile
	stderr, err := m.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting the %s manager: %v", name, err)
	}
	go m.follow(stderr, logFile)
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.exited
		if t.Failed() {
			logTail(t, m)
		}
	})
	return m
}

// logTail shows the end of a replica's log, which t.TempDir removes.
func logTail(t *testing.T, m *managerProcess) {
	t.Helper()
	raw, err := os.ReadFile(m.logPath)
	if err != nil {
		t.Logf("reading the log of the %s manager: %v", m.name, err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	t.Logf("last lines of the %s manager's log:\n%s", m.name, strings.Join(lines[max(len(lines)-40, 0):], "\n"))
}

// follow copies the log to its file and notes when the replica started
// campaigning and when it became the leader, from the lines it logs then.
func (m *managerProcess) follow(stderr interface{ Read([]byte) (int, error) }, logFile *os.File) {
	scanner := bufio.NewScanner(stderr)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	started, acquired := false, false
	for scanner.Scan() {
		line := scanner.Text()
		_, _ = logFile.WriteString(line + "\n")
		line = strings.ToLower(line)
		if !started && strings.Contains(line, campaigningLogLine) {
			started = true
			close(m.started)
		}
		if !acquired && strings.Contains(line, acquiredLogLine) {
			acquired = true
			m.mu.Lock()
			m.leaderAt = time.Now()
			m.mu.Unlock()
			close(m.acquired)
		}
	}
	_ = m.cmd.Wait()
	m.exitState = m.cmd.ProcessState
	_ = logFile.Close()
	close(m.exited)
}

func (m *managerProcess) leaderSince() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leaderAt
}

func (m *managerProcess) waitForLeadership(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-m.acquired:
	case <-m.exited:
		t.Fatalf("the %s manager exited before it led: %v; log: %s", m.name, m.exitState, m.logPath)
	case <-time.After(timeout):
		t.Fatalf("the %s manager did not become the leader within %s; log: %s", m.name, timeout, m.logPath)
	}
}

func (e *environment) waitForManagerStarted(t *testing.T, m *managerProcess) {
	t.Helper()
	select {
	case <-m.started:
	case <-m.exited:
		t.Fatalf("the %s manager exited at start: %v; log: %s", m.name, m.exitState, m.logPath)
	case <-time.After(30 * time.Second):
		t.Fatalf("the %s manager did not start campaigning within 30s; log: %s", m.name, m.logPath)
	}
	select {
	case <-m.acquired:
		t.Fatalf("the %s manager became a second leader; log: %s", m.name, m.logPath)
	default:
	}
}

func (m *managerProcess) kill(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-m.exited
}

// terminate sends SIGTERM and returns the exit status once the process is
// gone; past the grace period it is killed, as the kubelet would.
func (m *managerProcess) terminate(t *testing.T) int {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.exited:
	case <-time.After(terminationGracePeriod + 5*time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	return m.exitState.ExitCode()
}

// createEndUsers creates n SurgeEndUsers with a token Secret each, eight at
// a time, as a GitOps tool applying a large change would.
func (e *environment) createEndUsers(ctx context.Context, t *testing.T, prefix string, n int) []types.NamespacedName {
	t.Helper()
	keys := make([]types.NamespacedName, n)
	errs := make(chan error, n)
	slots := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		keys[i] = types.NamespacedName{Namespace: usersNamespace, Name: fmt.Sprintf("%s-%03d", prefix, i)}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			errs <- e.k8s.Create(ctx, &surgev1alpha1.SurgeEndUser{
				ObjectMeta: metav1.ObjectMeta{Namespace: keys[i].Namespace, Name: keys[i].Name},
				Spec: surgev1alpha1.SurgeEndUserSpec{
					AccountID:   account,
					FirstName:   "User",
					LastName:    keys[i].Name,
					TokenSecret: &surgev1alpha1.TokenSecretSpec{Name: keys[i].Name + "-token", DurationSeconds: 900},
				},
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("creating SurgeEndUsers: %v", err)
		}
	}
	return keys
}

// waitForRecordedUsers waits until at least n SurgeEndUsers have a user id in
// status: the leader is then in the middle of the work.
func (e *environment) waitForRecordedUsers(ctx context.Context, t *testing.T, keys []types.NamespacedName, n int) {
	t.Helper()
	poll(ctx, t, 30*time.Second, fmt.Sprintf("%d SurgeEndUsers with a user id", n), func() (bool, string) {
		list := &surgev1alpha1.SurgeEndUserList{}
		if err := e.k8s.List(ctx, list, client.InNamespace(usersNamespace)); err != nil {
			return false, err.Error()
		}
		recorded := 0
		for _, obj := range list.Items {
			if obj.Status.UserID != "" {
				recorded++
			}
		}
		if recorded >= len(keys) {
			t.Fatalf("all %d SurgeEndUsers were done before the leader could be stopped: slow creates down further", len(keys))
		}
		return recorded >= n, fmt.Sprintf("%d recorded", recorded)
	})
}

// waitForConvergence waits until every SurgeEndUser is Ready for its
// generation and its token Secret holds a token for its user.
func (e *environment) waitForConvergence(ctx context.Context, t *testing.T, keys []types.NamespacedName) {
	t.Helper()
	poll(ctx, t, 90*time.Second, fmt.Sprintf("all %d SurgeEndUsers Ready with their token Secret", len(keys)), func() (bool, string) {
		list := &surgev1alpha1.SurgeEndUserList{}
		if err := e.k8s.List(ctx, list, client.InNamespace(usersNamespace)); err != nil {
			return false, err.Error()
		}
		secrets := &corev1.SecretList{}
		if err := e.k8s.List(ctx, secrets, client.InNamespace(usersNamespace)); err != nil {
			return false, err.Error()
		}
		tokenUsers := map[string]string{}
		for _, secret := range secrets.Items {
			tokenUsers[secret.Name] = string(secret.Data[surgev1alpha1.SecretKeyUserID])
		}
		ready := 0
		for _, obj := range list.Items {
			condition := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady)
			if condition != nil && condition.Status == metav1.ConditionTrue &&
				obj.Status.ObservedGeneration == obj.Generation && obj.Status.UserID != "" &&
				tokenUsers[obj.Spec.TokenSecret.Name] == obj.Status.UserID {
				ready++
			}
		}
		return ready == len(keys) && len(list.Items) == len(keys), fmt.Sprintf("%d of %d converged", ready, len(keys))
	})
}

// expectOneRemoteUserEach compares Surge with the resources: each resource's
// user exists and is tagged with it, no resource has two users, and no user
// is left that no resource records.
func (e *environment) expectOneRemoteUserEach(ctx context.Context, t *testing.T) {
	t.Helper()
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := e.k8s.List(ctx, list, client.InNamespace(usersNamespace)); err != nil {
		t.Fatal(err)
	}
	byUserID := map[string]surgev1alpha1.SurgeEndUser{}
	for _, obj := range list.Items {
		byUserID[obj.Status.UserID] = obj
	}
	remoteByUID := map[string][]string{}
	orphans := 0
	for _, user := range e.surge.Users(account) {
		uid := user.Metadata[surgev1alpha1.MetadataUID]
		remoteByUID[uid] = append(remoteByUID[uid], user.ID)
		obj, recorded := byUserID[user.ID]
		if !recorded {
			orphans++
			t.Errorf("orphaned remote user %s (tagged %s/%s): no SurgeEndUser records it", user.ID,
				user.Metadata[surgev1alpha1.MetadataNamespace], user.Metadata[surgev1alpha1.MetadataName])
			continue
		}
		if uid != string(obj.UID) || user.Metadata[surgev1alpha1.MetadataNamespace] != obj.Namespace || user.Metadata[surgev1alpha1.MetadataName] != obj.Name {
			t.Errorf("remote user %s is tagged %s %s/%s, but SurgeEndUser %s/%s (uid %s) records it", user.ID, uid,
				user.Metadata[surgev1alpha1.MetadataNamespace], user.Metadata[surgev1alpha1.MetadataName], obj.Namespace, obj.Name, obj.UID)
		}
	}
	duplicates := 0
	for _, obj := range list.Items {
		if n := len(remoteByUID[string(obj.UID)]); n != 1 {
			duplicates += max(n-1, 0)
			t.Errorf("SurgeEndUser %s/%s has %d remote users: %v", obj.Namespace, obj.Name, n, remoteByUID[string(obj.UID)])
		}
	}
	t.Logf("%d SurgeEndUsers, %d remote users: %d duplicates, %d orphans", len(list.Items), len(e.surge.Users(account)), duplicates, orphans)
}

// poll checks done every 200ms until it holds or the timeout passes.
func poll(ctx context.Context, t *testing.T, timeout time.Duration, what string, done func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := done()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waited %s for %s: %s", timeout, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
