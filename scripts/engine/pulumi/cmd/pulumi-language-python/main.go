// Command pulumi-language-python is coco's own, minimal Python language host for the Pulumi engine.
//
// Why it exists: the upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3)
// is not served by the Go module proxy this project can reach (every version, and the version list, answer
// 403), and the engine cannot run a Python program without a language host. This host implements the parts
// of the LanguageRuntime protocol that `pulumi preview/up/destroy/refresh/about` and Python policy packs use,
// on top of the public github.com/pulumi/pulumi/sdk/v3/python/toolchain package (virtualenv, pip/uv/poetry).
//
// The program itself is run by the upstream `pulumi-language-python-exec` script, which setup.sh copies from
// the github.com/pulumi/pulumi/sdk/v3 module (same version as the Python SDK) next to this binary, exactly as
// the upstream release archive lays it out. Python policy packs run as `python -m pulumi.policy`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// configBootstrap starts the program's exec script after reading the stack's configuration from fd 3.
//
// Why: the engine hands the host every config value (secrets decrypted), and the upstream host passes them to
// the program as one environment variable, PULUMI_CONFIG. Linux refuses to start a process with any single
// environment string over 128 KiB (MAX_ARG_STRLEN, include/uapi/linux/binfmts.h): execve fails with E2BIG,
// "argument list too long", before the program runs. coco's configuration is about 680 bytes per workload,
// so a stack of about 190 workloads could not be deployed at all (benchmarks.kube at N = 1000). An inherited
// pipe has no such limit; the bootstrap puts the JSON where the upstream exec script reads it, the process's
// own os.environ (no limit applies inside a process), then runs that script as `python script ...` would.
const configBootstrap = `import json, os, runpy, sys
with os.fdopen(int(os.environ.pop("COCO_PULUMI_CONFIG_FD")), "rb") as f:
    payload = json.load(f)
os.environ["PULUMI_CONFIG"] = json.dumps(payload["config"])
os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(payload["secretKeys"])
del f, payload
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
`

// exitCodeBail is what pulumi-language-python-exec exits with after it has already shown the user an
// actionable error; the engine then must not print another one.
const exitCodeBail = 32

func main() {
	// The engine passes its address as the last positional argument. The upstream host also accepts these
	// flags; they are parsed so that a command line meant for it works here too.
	fs := flag.NewFlagSet("pulumi-language-python", flag.ContinueOnError)
	fs.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint (ignored)")
	fs.String("root", "", "Project root path (ignored; the engine sends it with each request)")
	fs.String("binary", "", "Unused")
	virtualenv := fs.String("virtualenv", "", "Virtual environment path, relative to the project root")
	tc := fs.String("toolchain", "", "Python toolchain: pip, uv or poetry")
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}
	var engineAddress string
	if args := fs.Args(); len(args) > 0 {
		engineAddress = args[len(args)-1]
	}

	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if engineAddress != "" {
		// Exit when the engine goes away, like the upstream hosts do.
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			fmt.Fprintf(os.Stderr, "pulumi-language-python: could not start health check: %v\n", err)
			os.Exit(1)
		}
	}

	// A process started as a shell's background job (nohup, `&` in a script, some CI runners) inherits
	// SIGINT as ignored. The engine stops its plugins with SIGINT and kills them only 5 s later, so an
	// ignored SIGINT made every operation 5 s slower. Notify re-enables the signal; it stops the server.
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	go func() {
		select {
		case <-interrupts:
			cancel()
		case <-ctx.Done():
		}
	}()

	host := &pythonHost{
		execScript:        filepath.Join(filepath.Dir(exe), "pulumi-language-python-exec"),
		defaultVirtualenv: *virtualenv,
		defaultToolchain:  *tc,
	}
	cancelChannel := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancelChannel)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelChannel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: could not start gRPC server: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execScript        string
	defaultVirtualenv string
	defaultToolchain  string
}

// options reads the `runtime.options` of Pulumi.yaml / PulumiPolicy.yaml as sent by the engine.
func (h *pythonHost) options(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Virtualenv: h.defaultVirtualenv,
	}
	tcName := h.defaultToolchain
	if o := info.GetOptions(); o != nil {
		m := o.AsMap()
		if v, ok := m["virtualenv"].(string); ok && v != "" {
			opts.Virtualenv = v
		}
		if v, ok := m["toolchain"].(string); ok && v != "" {
			tcName = v
		}
		if v, ok := m["typechecker"].(string); ok && v != "" {
			return opts, fmt.Errorf("runtime option typechecker=%q is not supported by coco's "+
				"pulumi-language-python; run the type checker separately", v)
		}
	}
	switch tcName {
	case "", "pip":
		opts.Toolchain = toolchain.Pip
		if tcName == "" {
			opts.Toolchain = toolchain.Auto
		}
	case "uv":
		opts.Toolchain = toolchain.Uv
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	default:
		return opts, fmt.Errorf("unknown Python toolchain %q", tcName)
	}
	return opts, nil
}

func (h *pythonHost) toolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	opts, err := h.options(info)
	if err != nil {
		return nil, err
	}
	return toolchain.ResolveToolchain(opts)
}

func (h *pythonHost) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *pythonHost) GetPluginInfo(ctx context.Context, _ *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// listPluginsScript prints the pulumi-plugin.json of every installed distribution that ships one, which is
// how Pulumi provider SDKs declare the provider plugin (name, version, download server) they need.
const listPluginsScript = `
import importlib.metadata as md, json, sys
out = []
for dist in md.distributions():
    for f in dist.files or []:
        if f.name == "pulumi-plugin.json":
            try:
                data = json.loads(f.read_text())
            except Exception:
                continue
            if data.get("resource", False):
                out.append(data)
json.dump(out, sys.stdout)
`

func (h *pythonHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, err := h.toolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", listPluginsScript)
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing Pulumi plugins of the installed Python packages: %w: %s", err, stderr.String())
	}
	var found []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Server  string `json:"server"`
	}
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, fmt.Errorf("parsing the list of Pulumi plugins: %w", err)
	}
	seen := map[string]bool{}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range found {
		if p.Name == "" || seen[p.Name+"@"+p.Version] {
			continue
		}
		seen[p.Name+"@"+p.Version] = true
		v := p.Version
		if v != "" && !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: p.Name, Version: v, Server: p.Server,
		})
	}
	return resp, nil
}

func (h *pythonHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	pkgs, err := h.GetRequiredPackages(ctx, &pulumirpc.GetRequiredPackagesRequest{Info: req.GetInfo()})
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range pkgs.Packages {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server,
		})
	}
	return resp, nil
}

func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return nil, status.Error(codes.InvalidArgument, "RunRequest.info is required")
	}
	tc, err := h.toolchain(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if _, err := os.Stat(h.execScript); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf(
			"%s is missing (scripts/setup.sh installs it next to pulumi-language-python): %v", h.execScript, err)}, nil
	}

	program := info.GetProgramDirectory()
	if ep := info.GetEntryPoint(); ep != "" && ep != "." {
		program = filepath.Join(program, ep)
	}
	args := []string{"-u", "-c", configBootstrap, h.execScript}
	args = append(args,
		"--monitor", req.GetMonitorAddress(),
		"--engine", engineArg(req),
		"--project", req.GetProject(),
		"--root_directory", info.GetRootDirectory(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--dry_run", fmt.Sprintf("%t", req.GetDryRun()),
		"--parallel", fmt.Sprintf("%d", req.GetParallel()),
		"--organization", req.GetOrganization(),
		program,
	)
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	config := req.GetConfig()
	if config == nil {
		config = map[string]string{} // "null" would break pulumi.runtime.set_all_config
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	// The configuration goes through a pipe, not the environment (see configBootstrap).
	payload, err := json.Marshal(struct {
		Config     map[string]string `json:"config"`
		SecretKeys []string          `json:"secretKeys"`
	}{config, secretKeys})
	if err != nil {
		return nil, err
	}
	configReader, configWriter, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{configReader} // fd 3 in the program
	cmd.Env = append(env, "COCO_PULUMI_CONFIG_FD=3")
	cmd.Dir = req.GetPwd()
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	if err := cmd.Start(); err != nil {
		configReader.Close()
		configWriter.Close()
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program (could not run language "+
			"executor): %v", err)}, nil
	}
	configReader.Close() // the program's copy stays open
	// A payload larger than the pipe's buffer blocks until the program reads it: write alongside.
	go func() {
		_, _ = configWriter.Write(payload)
		configWriter.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitCodeBail {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d",
				exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program (could not run language "+
			"executor): %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// engineArg returns the engine address the program should log to; the engine passes it as the first arg.
func engineArg(req *pulumirpc.RunRequest) string {
	if len(req.GetArgs()) > 0 {
		return req.GetArgs()[0]
	}
	return ""
}

// RunPlugin runs a plugin written in Python. Only policy packs (kind "analyzer", i.e. a PulumiPolicy.yaml with
// `runtime: python`) are supported: they run as `python -u -m pulumi.policy <engine address> <pack dir>`, the
// same module the Python SDK ships for this purpose.
func (h *pythonHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	if req.GetKind() != "analyzer" {
		return status.Errorf(codes.Unimplemented,
			"coco's pulumi-language-python runs only policy packs (analyzer plugins), not %q plugins", req.GetKind())
	}
	info := req.GetInfo()
	if info == nil {
		return status.Error(codes.InvalidArgument, "RunPluginRequest.info is required")
	}
	tc, err := h.toolchain(info)
	if err != nil {
		return err
	}
	if err := tc.ValidateVenv(server.Context()); err != nil {
		return err
	}
	args := append([]string{}, req.GetArgs()...)
	args = append(args, info.GetProgramDirectory())
	cmd, err := tc.ModuleCommand(server.Context(), "pulumi.policy", args...)
	if err != nil {
		return err
	}
	cmd.Args = append([]string{cmd.Args[0], "-u"}, cmd.Args[1:]...)
	// The engine sends the complete environment for the plugin; keep the toolchain's virtualenv activation.
	env := req.GetEnv()
	if cmd.Env != nil {
		if venv, err := tc.VirtualEnvPath(server.Context()); err == nil && venv != "" {
			env = toolchain.ActivateVirtualEnv(env, venv)
		}
	}
	cmd.Env = env
	cmd.Dir = req.GetPwd()

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}

	var mu sync.Mutex
	send := func(resp *pulumirpc.RunPluginResponse) {
		mu.Lock()
		defer mu.Unlock()
		_ = server.Send(resp)
	}
	var wg sync.WaitGroup
	pump := func(r io.Reader, wrap func([]byte) *pulumirpc.RunPluginResponse) {
		defer wg.Done()
		br := bufio.NewReader(r)
		buf := make([]byte, 32*1024)
		for {
			n, err := br.Read(buf)
			if n > 0 {
				send(wrap(append([]byte(nil), buf[:n]...)))
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go pump(stdout, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
	})
	go pump(stderr, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
	})
	wg.Wait()

	code := 0
	if err := cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return err
		}
		code = exitErr.ExitCode()
	}
	send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}})
	return nil
}

func (h *pythonHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	tc, err := h.toolchain(req.GetInfo())
	if err != nil {
		return err
	}
	out := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	errw := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	dir := req.GetDirectory()
	if dir == "" && req.GetInfo() != nil {
		dir = req.GetInfo().GetProgramDirectory()
	}
	return tc.InstallDependencies(server.Context(), dir, req.GetUseLanguageVersionTools(), true, out, errw)
}

type streamWriter struct{ send func([]byte) error }

func (w *streamWriter) Write(p []byte) (int, error) {
	if err := w.send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *pythonHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := h.toolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	about, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: about.PythonExecutable,
		Version:    about.PythonVersion.String(),
		Metadata:   map[string]string{"host": "coco pulumi-language-python " + version.Version},
	}, nil
}

func (h *pythonHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := h.toolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, d := range deps {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return resp, nil
}

func (h *pythonHost) RuntimeOptionsPrompts(
	ctx context.Context, req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *pythonHost) Cancel(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
