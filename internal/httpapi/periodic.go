package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
	"github.com/beaver-raft/beaver-raft/internal/fsm"
	"github.com/beaver-raft/beaver-raft/internal/jobspec"
	"github.com/beaver-raft/beaver-raft/internal/periodic"
	"github.com/beaver-raft/beaver-raft/internal/replica"
)

// GET /v1/periodic
func (a *API) periodicList(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	var list []fsm.Schedule
	rep.Read(func(m *fsm.Machine) { list = m.Schedules() })
	out := api.PeriodicList{Schedules: make([]api.Periodic, 0, len(list))}
	for i := range list {
		out.Schedules = append(out.Schedules, toPeriodic(&list[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/periodic/{name}
func (a *API) periodicGet(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	name := r.PathValue("name")
	var s fsm.Schedule
	var ok bool
	rep.Read(func(m *fsm.Machine) { s, ok = m.Schedule(name) })
	if !ok {
		return noSchedule(name)
	}
	writeJSON(w, http.StatusOK, toPeriodic(&s))
	return nil
}

// PUT /v1/periodic/{name}
func (a *API) periodicPut(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	name := r.PathValue("name")
	var req api.PeriodicRequest
	if err := a.decodeBody(w, r, &req); err != nil {
		return err
	}
	now := a.clock()
	in := periodic.Input{Cron: req.Cron, CatchUp: req.CatchUp, Job: jobspec.Input{
		Queue: req.Job.Queue, Type: req.Job.Type, Payload: req.Job.Payload,
		Priority: req.Job.Priority, MaxAttempts: req.Job.MaxAttempts,
	}}
	var err error
	if in.Every, err = jobspec.ParseDuration("every", req.Every); err != nil {
		return specError("", err)
	}
	if in.Job.Timeout, err = jobspec.ParseDuration("timeout", req.Job.Timeout); err != nil {
		return specError("job", err)
	}
	b := periodic.Builder{Jobs: a.jobs}
	def, err := b.Build(name, &in, fsm.OriginAPI, now)
	if err != nil {
		return specError("", err)
	}
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindPeriodicPut, Now: now.UnixNano(),
		Periodic: &fsm.PeriodicCommand{Name: name, Def: def}})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return periodicRejection(res.Err, name)
	}
	// answer what is stored: on a follower, wait until it applied the put
	if err := replica.ReadBarrier(r.Context(), rep); err != nil {
		return systemError(0, err)
	}
	var s fsm.Schedule
	var ok bool
	rep.Read(func(m *fsm.Machine) { s, ok = m.Schedule(name) })
	if !ok {
		return noSchedule(name) // deleted again meanwhile
	}
	writeJSON(w, http.StatusOK, toPeriodic(&s))
	return nil
}

// DELETE /v1/periodic/{name}: answers the deleted schedule. The jobs it
// enqueued stay.
func (a *API) periodicDelete(w http.ResponseWriter, r *http.Request, rep replica.Replica) error {
	name := r.PathValue("name")
	var body struct{}
	if err := a.decodeOptionalBody(w, r, &body); err != nil {
		return err
	}
	var s fsm.Schedule
	rep.Read(func(m *fsm.Machine) { s, _ = m.Schedule(name) })
	res, err := a.propose(r.Context(), rep, &fsm.Command{Kind: fsm.KindPeriodicDelete, Now: a.clock().UnixNano(),
		Periodic: &fsm.PeriodicCommand{Name: name}})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return periodicRejection(res.Err, name)
	}
	if s.Name == "" { // a follower that had not applied the put yet
		s.Name = name
	}
	writeJSON(w, http.StatusOK, toPeriodic(&s)) // the schedule as it was
	return nil
}

func noSchedule(name string) *httpError {
	return &httpError{status: http.StatusNotFound, code: api.CodeNotFound, msg: "no schedule named " + clip(name)}
}

func periodicRejection(err error, name string) *httpError {
	var inv *fsm.InvalidError
	switch {
	case errors.Is(err, fsm.ErrNoSchedule):
		return noSchedule(name)
	case errors.Is(err, fsm.ErrScheduleLimit):
		return &httpError{status: http.StatusConflict, code: api.CodeConflict, msg: err.Error() + ": delete one first"}
	case errors.As(err, &inv):
		return invalidSpec("", inv)
	}
	return &httpError{status: http.StatusInternalServerError, code: api.CodeInternal, msg: "unexpected rejection: " + err.Error(), err: err}
}

// toPeriodic renders a schedule, with its next run.
func toPeriodic(s *fsm.Schedule) api.Periodic {
	out := api.Periodic{
		Name:    s.Name,
		Cron:    s.Cron,
		CatchUp: s.CatchUp.String(),
		Job: api.PeriodicJob{
			Queue: s.Job.Queue, Type: s.Job.Type, Payload: rawJSON(s.Job.Payload, "null"),
			Priority: s.Job.Priority, MaxAttempts: s.Job.MaxAttempts, Timeout: time.Duration(s.Job.Timeout).String(),
		},
		Origin:    s.Origin,
		LastFired: wireTime(s.LastFired),
		Fired:     s.Fired,
		Skipped:   s.Skipped,
		Since:     wireTime(s.Since),
		CreatedAt: wireTime(s.CreatedAt),
		UpdatedAt: wireTime(s.UpdatedAt),
	}
	if s.Every != 0 {
		out.Every = time.Duration(s.Every).String()
	}
	if p, err := periodic.New(*s); err == nil {
		out.NextRun = wireTime(p.Next())
	}
	return out
}
