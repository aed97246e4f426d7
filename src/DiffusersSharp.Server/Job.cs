using System.Text.Json.Nodes;
using DiffusersSharp.Generation;

namespace DiffusersSharp.Server;

/// <summary>
/// A generation queued on a model's worker: its request, state, the events it has produced so far (a subscriber that
/// arrives late reads them from the start, then waits for more) and its result. Thread-safe; the worker never waits for a
/// subscriber.
/// </summary>
public sealed class Job
{
    private readonly object _gate = new();
    private readonly List<JobEvent> _events = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A new queued job for <paramref name="model"/>.</summary>
    public Job(string model, GenerationRequest request)
    {
        Model = model;
        Request = request;
        Created = DateTimeOffset.UtcNow;
    }

    /// <summary>The job's id (32 hex digits).</summary>
    public string Id { get; } = Guid.NewGuid().ToString("N");

    /// <summary>The model name it runs on.</summary>
    public string Model { get; }

    /// <summary>What to generate.</summary>
    public GenerationRequest Request { get; }

    /// <summary>When it was queued.</summary>
    public DateTimeOffset Created { get; }

    /// <summary><c>queued</c>, <c>running</c>, <c>done</c>, <c>failed</c> or <c>cancelled</c>.</summary>
    public string Status { get; private set; } = "queued";

    /// <summary>Cancelled by <see cref="Cancel"/> (DELETE /v1/jobs/{id}, or the client of a synchronous request leaving).</summary>
    public CancellationTokenSource Cancellation { get; } = new();

    /// <summary>The result once done.</summary>
    public GenerationResult? Result { get; private set; }

    /// <summary>The file names of the result images in the store once done.</summary>
    public IReadOnlyList<string> Files { get; private set; } = [];

    /// <summary>Why it failed, when it did.</summary>
    public string? Error { get; private set; }

    /// <summary>The last progress event (step, total, speed), for polling.</summary>
    public JsonObject? LastProgress { get; private set; }

    /// <summary>Completes when the job has ended (done, failed or cancelled).</summary>
    public Task Finished => _finished.Task;
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Asks the job to stop: a queued job is dropped when its turn comes, a running one stops within one step.</summary>
    public void Cancel() => Cancellation.Cancel();

    /// <summary>Appends an event and wakes the subscribers.</summary>
    public void Publish(JobEvent e)
    {
        TaskCompletionSource wake;
        lock (_gate)
        {
            if (Status is "done" or "failed" or "cancelled") return;
            _events.Add(e);
            if (e.Type == "started") Status = "running";
            if (e.Type == "step") LastProgress = e.Data;
            wake = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        wake.TrySetResult();
    }

    /// <summary>Ends the job with <paramref name="status"/> and its final event.</summary>
    public void Finish(string status, JobEvent final, GenerationResult? result = null, IReadOnlyList<string>? files = null, string? error = null)
    {
        lock (_gate)
        {
            if (Status is "done" or "failed" or "cancelled") return;
            Result = result;
            Files = files ?? [];
            Error = error;
        }
        Publish(final);
        lock (_gate) Status = status;
        _finished.TrySetResult();
    }

    /// <summary>The events from index <paramref name="from"/> on, and a task that completes when more arrive.</summary>
    public (IReadOnlyList<JobEvent> Events, Task More) Read(int from)
    {
        lock (_gate)
            return (from < _events.Count ? _events.GetRange(from, _events.Count - from) : [], _changed.Task);
    }
}
