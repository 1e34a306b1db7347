package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/beaver-raft/beaver-raft/api"
)

// enqueueStream sends the jobs of jf on the Client's enqueue stream, each
// with its own answer, and reports every one the server refused.
func enqueueStream(ctx context.Context, e *env, f *enqueueFlags, jf *jobFile) error {
	for _, j := range jf.jobs {
		if len(j.req.DependsOnIndex) > 0 {
			return usageErrorf("%s:%d: depends_on_index names jobs of the same batch: it cannot be used with --stream", jf.name, j.line)
		}
	}
	c, err := f.cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	var bar *progressBar
	if isTerminal(e.stderr) {
		bar = &progressBar{w: e.stderr, total: len(jf.jobs)}
		bar.show(0)
		defer bar.clear()
	}
	answers := make([]api.EnqueueResponse, len(jf.jobs))
	errs := make([]error, len(jf.jobs))
	reqs := make([]api.EnqueueRequest, len(jf.jobs))
	for i, j := range jf.jobs {
		reqs[i] = j.req
	}
	start := time.Now()
	c.EnqueueEach(ctx, reqs, func(i int, res api.EnqueueResponse, err error) {
		answers[i], errs[i] = res, f.cf.callErr(err)
		bar.show(i + 1)
	})
	elapsed := time.Since(start)
	bar.clear()

	failed, dups := 0, 0
	var out api.BatchResponse
	for i, err := range errs {
		if err != nil {
			if failed < maxProblems {
				fmt.Fprintf(e.stderr, "%s:%d: %v\n", jf.name, jf.jobs[i].line, err)
			}
			failed++
			continue
		}
		if answers[i].Duplicate {
			dups++
		}
		switch {
		case f.ids:
			fmt.Fprintln(e.stdout, answers[i].ID)
		case f.jsonOut:
			out.IDs = append(out.IDs, answers[i].ID)
			out.Duplicates = append(out.Duplicates, answers[i].Duplicate)
		}
	}
	if failed > maxProblems {
		fmt.Fprintf(e.stderr, "%s: and %d more jobs not enqueued\n", jf.name, failed-maxProblems)
	}
	if failed > 0 {
		return fmt.Errorf("%s: enqueued %d of %d jobs; %s not enqueued (see above; an unknown_outcome one may or may not have been)",
			jf.name, len(jf.jobs)-failed, len(jf.jobs), plural(failed, "job was", "jobs were"))
	}
	switch {
	case f.jsonOut:
		return writeJSONLine(e.stdout, out)
	case f.ids:
		return nil
	}
	msg := fmt.Sprintf("enqueued %s in %.2fs (%.0f jobs/s) on one stream", plural(len(jf.jobs), "job", "jobs"), elapsed.Seconds(), float64(len(jf.jobs))/max(elapsed.Seconds(), 1e-9))
	if dups > 0 {
		msg += fmt.Sprintf(", %s (a job holding the same unique_key existed)", plural(dups, "duplicate", "duplicates"))
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}
