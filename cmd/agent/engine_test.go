package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/lookout-agent/lookout/config"
)

// fakeEngine answers on a unix socket /_ping and /version as a Docker Engine speaking API
// minAPI to maxAPI does, refusing a versioned path outside that range with the engine's
// own HTTP 400 (moby's daemon/server/middleware/version.go). It records the paths asked for.
func fakeEngine(t *testing.T, version, minAPI, maxAPI string) (host string, paths *[]string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "engine")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Api-Version", maxAPI)
		w.Header().Set("Server", "Docker/"+version+" (linux)")
		if r.URL.Path == "/_ping" {
			_, _ = w.Write([]byte("OK"))
			return
		}
		var api string
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v"); ok {
			api, _, _ = strings.Cut(rest, "/")
		}
		refuse := func(msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
		}
		switch {
		case api != "" && versions.LessThan(api, minAPI):
			refuse(fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", api, minAPI))
		case api != "" && versions.GreaterThan(api, maxAPI):
			refuse(fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", api, maxAPI))
		case strings.HasSuffix(r.URL.Path, "/version"):
			_ = json.NewEncoder(w).Encode(map[string]string{"Version": version, "ApiVersion": maxAPI, "MinAPIVersion": minAPI})
		case strings.HasSuffix(r.URL.Path, "/containers/json"):
			_, _ = w.Write([]byte("[]"))
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + l.Addr().String(), &seen
}

func TestEngineAPIRange(t *testing.T) {
	if client.MinAPIVersion != "1.40" || client.MaxAPIVersion != "1.56" {
		t.Fatalf("the client negotiates API %s to %s: update supportedEngines and the docs (operations.md, README.md)",
			client.MinAPIVersion, client.MaxAPIVersion)
	}
	for _, tc := range []struct {
		name, version, minAPI, maxAPI string
		negotiated                    string   // the API version the client then speaks
		refused                       []string // the error names these; nil: supported
	}{
		{name: "Docker 19.03", version: "19.03.15", minAPI: "1.12", maxAPI: "1.40", negotiated: "1.40"},
		{name: "Docker 20.10", version: "20.10.24", minAPI: "1.12", maxAPI: "1.41", negotiated: "1.41"},
		{name: "Docker 29", version: "29.1.0", minAPI: "1.44", maxAPI: "1.56", negotiated: "1.56"},
		{name: "a newer engine that still accepts 1.56", version: "31.0.0", minAPI: "1.44", maxAPI: "1.60", negotiated: "1.56"},
		{name: "Docker 18.09", version: "18.09.9", minAPI: "1.12", maxAPI: "1.39",
			refused: []string{"speaks API 1.39 at most", "upgrade the engine"}},
		{name: "an engine whose minimum is above ours", version: "31.0.0", minAPI: "1.57", maxAPI: "1.60",
			refused: []string{"requires API 1.57 or later (it speaks up to 1.60)", "upgrade Lookout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, paths := fakeEngine(t, tc.version, tc.minAPI, tc.maxAPI)
			dc, err := dockerClient(config.Config{DockerHost: host})
			if err != nil {
				t.Fatal(err)
			}
			defer dc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v, err := engineAPI(ctx, dc)
			if tc.refused == nil {
				if err != nil || v.Version != tc.version || v.APIVersion != tc.maxAPI || v.MinAPIVersion != tc.minAPI {
					t.Fatalf("engineAPI = %+v, %v", v, err)
				}
				if dc.ClientVersion() != tc.negotiated {
					t.Errorf("the client speaks %s, want %s", dc.ClientVersion(), tc.negotiated)
				}
				if _, err := dc.ContainerList(ctx, client.ContainerListOptions{}); err != nil {
					t.Errorf("a call after the check: %v (paths %v)", err, *paths)
				}
				return
			}
			if !errors.Is(err, errUnsupportedEngine) {
				t.Fatalf("engineAPI error %v, want errUnsupportedEngine", err)
			}
			// Both versions: the engine's, and the range Lookout supports.
			for _, want := range append(tc.refused, host, "Lookout supports Docker 19.03 (API 1.40) to Docker 29 (API 1.56)") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// An engine that cannot be reached is not an unsupported one: the agent starts and the
// inventory retries.
func TestEngineAPIUnreachable(t *testing.T) {
	dc, err := dockerClient(config.Config{DockerHost: "unix:///nonexistent/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	if _, err := engineAPI(context.Background(), dc); err == nil || errors.Is(err, errUnsupportedEngine) {
		t.Errorf("engineAPI error %v, want a connection error", err)
	}
}

// `lookout check` and the agent's start say which versions do not fit, and exit 1.
func TestUnsupportedEngineAtCheckAndStart(t *testing.T) {
	host, _ := fakeEngine(t, "18.09.9", "1.12", "1.39")
	env := func(string) string { return "" }
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-docker-host", host}, env, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "lookout check: unsupported Docker Engine: the Docker Engine at "+host+" speaks API 1.39 at most; Lookout supports Docker 19.03 (API 1.40) to Docker 29 (API 1.56)") {
		t.Errorf("check: exit %d, stderr %s", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"run", "-docker-host", host}, env, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), `"msg":"lookout stopped"`) ||
		!strings.Contains(errb.String(), "speaks API 1.39 at most; Lookout supports Docker 19.03 (API 1.40) to Docker 29 (API 1.56)") {
		t.Errorf("run: exit %d, stderr %s", code, errb.String())
	}

	host, _ = fakeEngine(t, "20.10.24", "1.12", "1.41")
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "-docker-host", host}, env, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "docker engine: ok (Docker 20.10.24, API 1.12 to 1.41, Lookout speaks 1.41; supported: Docker 19.03 (API 1.40) to Docker 29 (API 1.56))") {
		t.Errorf("check: exit %d, stdout %s, stderr %s", code, out.String(), errb.String())
	}
}
