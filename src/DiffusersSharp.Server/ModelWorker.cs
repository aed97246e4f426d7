using System.Text.Json.Nodes;
using DiffusersSharp.Generation;

namespace DiffusersSharp.Server;

/// <summary>
/// The one thread that runs a model's jobs, in order, from a bounded queue; loads the model through the pool when its
/// turn comes (which may unload others). Publishes each job's events: queue position, steps, previews, the result.
/// </summary>
public sealed class ModelWorker : IDisposable
{
    private readonly object _gate = new();
    private readonly List<Job> _waiting = [];
    private readonly ModelPool _pool;
    private readonly ResultStore _store;
    private readonly ServerOptions _options;
    private readonly Thread _thread;
    private bool _stopping;
    private Job? _current;
    private double _lastSeconds = 1;
    private long _liveTensors;

    internal ModelWorker(string name, string idOrPath, ModelPool pool, ResultStore store, ServerOptions options)
    {
        Name = name;
        IdOrPath = idOrPath;
        _pool = pool;
        _store = store;
        _options = options;
        _thread = new Thread(Loop) { IsBackground = true, Name = "diffusers worker " + name };
        _thread.Start();
    }

    /// <summary>The model's name in the API.</summary>
    public string Name { get; }

    /// <summary>The folder or Hub id it loads.</summary>
    public string IdOrPath { get; }

    /// <summary>The loaded model, or null while unloaded.</summary>
    public GenerationService? Service { get; internal set; }

    /// <summary>When it last ran a job (for least-recently-used unloading).</summary>
    public DateTime LastUsed { get; internal set; } = DateTime.MinValue;

    /// <summary>True while a job runs (a running model is never unloaded).</summary>
    public bool Running { get; internal set; }

    /// <summary>Jobs waiting (not counting the running one).</summary>
    public int QueueLength { get { lock (_gate) return _waiting.Count; } }

    /// <summary>
    /// The TorchSharp tensors created on this worker's thread and not yet disposed, counted after its last generation (the
    /// model's weights too when a job loaded it, not the preload at start). Constant from one job to the next: a growth is a leak.
    /// </summary>
    public long LiveTensors => Interlocked.Read(ref _liveTensors);

    /// <summary>Samples <see cref="LiveTensors"/> (on the worker's thread, after a generation, before its job ends).</summary>
    internal void CountLiveTensors() => Interlocked.Exchange(ref _liveTensors, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);

    /// <summary>Seconds a new job would wait, about (for Retry-After).</summary>
    public int RetryAfterSeconds { get { lock (_gate) return (int)Math.Clamp(Math.Ceiling(_lastSeconds * (_waiting.Count + 1)), 1, 3600); } }

    /// <summary>Queues <paramref name="job"/> unless the queue is full; publishes its <c>queued</c> event with its position.</summary>
    public bool TryEnqueue(Job job)
    {
        lock (_gate)
        {
            // MaxQueue counts the jobs that wait behind a running one: an idle worker takes one more (it runs at once)
            if (_stopping || _waiting.Count >= _options.MaxQueue + (_current is null ? 1 : 0)) return false;
            // published before the worker can see the job, so "queued" is always its first event
            job.Publish(Queued(job, _waiting.Count));
            _waiting.Add(job);
            Monitor.PulseAll(_gate);
        }
        return true;
    }

    /// <summary>
    /// Takes <paramref name="job"/> out of the queue if it is still waiting and ends it as cancelled (its event and history
    /// record), at once: its slot is free for a new job and the jobs behind it get their new positions. False when it is
    /// not waiting (running, finished, or on another worker); a running job stops through its cancellation token.
    /// </summary>
    public bool Withdraw(Job job)
    {
        lock (_gate)
        {
            int index = _waiting.IndexOf(job);
            if (index < 0) return false;
            _waiting.RemoveAt(index);
            for (int i = index; i < _waiting.Count; i++) _waiting[i].Publish(Queued(_waiting[i], i));
        }
        JobRunner.End(job, _store, "cancelled", null, null);
        return true;
    }

    /// <summary>The <c>queued</c> event of the job at <paramref name="index"/> in the queue: its position counts the jobs ahead of it, the running one included (call under the lock).</summary>
    private JobEvent Queued(Job job, int index) =>
        new("queued", new JsonObject { ["id"] = job.Id, ["position"] = index + (_current is null ? 0 : 1), ["model"] = Name });

    private void Loop()
    {
        while (true)
        {
            Job job;
            lock (_gate)
            {
                while (_waiting.Count == 0 && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;
                job = _waiting[0];
                _waiting.RemoveAt(0);
                _current = job;
                // published under the lock, so a job's positions never arrive out of order (Withdraw publishes them too)
                for (int i = 0; i < _waiting.Count; i++) _waiting[i].Publish(Queued(_waiting[i], i));
            }
            var clock = System.Diagnostics.Stopwatch.StartNew();
            JobRunner.Run(job, this, _pool, _store, _options);
            lock (_gate)
            {
                _lastSeconds = Math.Max(0.05, clock.Elapsed.TotalSeconds);
                _current = null;
            }
        }
    }

    /// <summary>Stops the thread after the job in progress; waiting jobs are cancelled.</summary>
    public void Dispose()
    {
        List<Job> dropped;
        lock (_gate)
        {
            _stopping = true;
            dropped = [.. _waiting];
            _waiting.Clear();
            Monitor.PulseAll(_gate);
        }
        foreach (var j in dropped) JobRunner.End(j, _store, "cancelled", null, "the server is stopping");
        _thread.Join(TimeSpan.FromSeconds(30));
    }
}
