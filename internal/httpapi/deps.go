package httpapi

import (
	"strconv"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
)

// parseDeps reads depends_on, depends_on_index and on_dependency_failure
// of one enqueue (nil when it has none). The machine checks that the ids
// exist and that the indexes name earlier jobs of the batch.
func parseDeps(req *api.EnqueueRequest, prefix string) (*fsm.Deps, error) {
	run := false
	switch req.OnDependencyFailure {
	case "", "cancel":
	case "run":
		run = true
	default:
		return nil, invalidf("%s must be cancel or run, not %q", field(prefix, "on_dependency_failure"), req.OnDependencyFailure)
	}
	if len(req.DependsOn) == 0 && len(req.DependsOnIndex) == 0 {
		if req.OnDependencyFailure != "" {
			return nil, invalidf("%s needs depends_on or depends_on_index", field(prefix, "on_dependency_failure"))
		}
		return nil, nil
	}
	if n := len(req.DependsOn) + len(req.DependsOnIndex); n > fsm.MaxDeps {
		return nil, invalidf("%s names %d jobs, more than the limit of %d", field(prefix, "depends_on"), n, fsm.MaxDeps)
	}
	d := &fsm.Deps{OnIndex: req.DependsOnIndex, RunOnFailure: run}
	for i, s := range req.DependsOn {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil || id == 0 {
			return nil, invalidf("%s must be a decimal job id, not %q", field(prefix, "depends_on["+strconv.Itoa(i)+"]"), s)
		}
		d.On = append(d.On, id)
	}
	return d, nil
}

// depsToWire renders a job's dependencies.
func depsToWire(d *fsm.JobDeps, out *api.Job) {
	for _, id := range d.On {
		out.DependsOn = append(out.DependsOn, formatID(id))
	}
	for _, id := range d.Waiting {
		out.WaitingFor = append(out.WaitingFor, formatID(id))
	}
	if d.RunOnFailure {
		out.OnDependencyFailure = "run"
	}
}
