//go:build tools

// Package tools records the commands this wrapper module builds, so `go mod tidy` keeps their
// dependencies in go.sum. build.sh builds them with one `go build` so shared packages compile once.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
