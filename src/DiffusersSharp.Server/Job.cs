using System.Text.Json.Nodes;
using DiffusersSharp.Generation;

namespace DiffusersSharp.Server;

/// <summary>
/// A generation queued on a model's worker: its request, state, the events it has produced so far (a subscriber that
/// arrives late reads them from the start, then waits for more) and its result. Thread-safe; the worker never waits for a
/// subscriber. Once finished and no longer among the newest few, the server <see cref="Compact"/>s it: it keeps its state,
/// files, seed and final event, and drops the rest (the result's PNG bytes are in the store).
/// </summary>
public sealed class Job
{
    private readonly object _gate = new();
    private readonly List<JobEvent> _events = [];
    private int _dropped;   // events dropped from the front by Compact: _events[0] is event number _dropped
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

    /// <summary>What to generate (without its init image and mask once compacted).</summary>
    public GenerationRequest Request { get; private set; }

    /// <summary>When it was queued.</summary>
    public DateTimeOffset Created { get; }

    /// <summary><c>queued</c>, <c>running</c>, <c>done</c>, <c>failed</c> or <c>cancelled</c>.</summary>
    public string Status { get; private set; } = "queued";

    /// <summary>Cancelled by <see cref="Cancel"/> (DELETE /v1/jobs/{id}, or the client of a synchronous request leaving).</summary>
    public CancellationTokenSource Cancellation { get; } = new();

    /// <summary>The result once done; null again once compacted (the images are in the store, see <see cref="Files"/>).</summary>
    public GenerationResult? Result { get; private set; }

    /// <summary>The seed that drew the images, once done (kept when compacted).</summary>
    public long? Seed { get; private set; }

    /// <summary>The file names of the result images in the store once done.</summary>
    public IReadOnlyList<string> Files { get; private set; } = [];

    /// <summary>Why it failed, when it did.</summary>
    public string? Error { get; private set; }

    /// <summary>
    /// True when it failed because of what was asked (the request does not fit the model: an inpainting model without an
    /// image, an SDXL model with one, a LoRA of another model, latents that overflow): a synchronous request then gets 400
    /// (the same request fails the same way again, so a client must not retry it); false for a fault of the server (500).
    /// </summary>
    public bool RequestError { get; private set; }

    /// <summary>
    /// Whether its run decodes previews (<see cref="ServerOptions.PreviewEvery"/>): only a job whose events someone can
    /// follow (<c>POST /v1/jobs</c>); a synchronous OpenAI request never shows its job id, so its previews would be wasted.
    /// </summary>
    public bool Previews { get; init; } = true;

    /// <summary>The last progress event (step, total, speed), for polling.</summary>
    public JsonObject? LastProgress { get; private set; }

    /// <summary>Called once when the job ends, before <see cref="Finished"/> completes (the server's job table uses it).</summary>
    internal Action<Job>? Ended { get; init; }

    /// <summary>Completes when the job has ended (done, failed or cancelled).</summary>
    public Task Finished => _finished.Task;
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Signals the job's cancellation token: a running job stops within one step; a waiting one is skipped when its turn
    /// comes (<see cref="DiffusersServer.Cancel"/> also takes it out of the queue at once).
    /// </summary>
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
    public void Finish(string status, JobEvent final, GenerationResult? result = null, IReadOnlyList<string>? files = null, string? error = null,
        bool requestError = false)
    {
        lock (_gate)
        {
            if (Status is "done" or "failed" or "cancelled") return;
            Result = result;
            Seed = result?.Seed;
            Files = files ?? [];
            Error = error;
            RequestError = requestError;
        }
        Publish(final);
        lock (_gate) Status = status;
        Ended?.Invoke(this);
        _finished.TrySetResult();
    }

    /// <summary>
    /// The events from number <paramref name="from"/> on, and a task that completes when more arrive. Of a compacted job
    /// only the final event is left: a reader that has not had it yet gets it.
    /// </summary>
    public (IReadOnlyList<JobEvent> Events, Task More) Read(int from)
    {
        lock (_gate)
        {
            int start = Math.Max(from - _dropped, 0);
            return (start < _events.Count ? _events.GetRange(start, _events.Count - start) : [], _changed.Task);
        }
    }

    /// <summary>
    /// Drops what a finished job no longer needs in memory: its events but the final one (steps, base64 previews), the
    /// result (its images are in the store) and the request's init image and mask. Keeps what <c>GET /v1/jobs/{id}</c>, a
    /// late event subscriber and <c>DELETE</c> read: id, model, status, times, files, seed, error, last progress. Nothing
    /// happens while it has not finished.
    /// </summary>
    public void Compact()
    {
        lock (_gate)
        {
            if (!_finished.Task.IsCompleted || (_events.Count <= 1 && Result is null)) return;
            var final = _events[^1];
            _dropped += _events.Count - 1;
            _events.Clear();
            _events.Add(final);
            _events.TrimExcess();
            Result = null;
            if (Request.InitImage is not null || Request.Mask is not null) Request = Request with { InitImage = null, Mask = null };
        }
    }
}
