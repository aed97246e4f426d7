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
    private double _lastSeconds = 1;

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

    /// <summary>Seconds a new job would wait, about (for Retry-After).</summary>
    public int RetryAfterSeconds { get { lock (_gate) return (int)Math.Clamp(Math.Ceiling(_lastSeconds * (_waiting.Count + 1)), 1, 3600); } }

    /// <summary>Queues <paramref name="job"/> unless the queue is full; publishes its <c>queued</c> event with its position.</summary>
    public bool TryEnqueue(Job job)
    {
        lock (_gate)
        {
            if (_stopping || _waiting.Count >= _options.MaxQueue) return false;
            // published before the worker can see the job, so "queued" is always its first event
            int position = _waiting.Count + (Running ? 1 : 0);
            job.Publish(new JobEvent("queued", new JsonObject { ["id"] = job.Id, ["position"] = position, ["model"] = Name }));
            _waiting.Add(job);
            Monitor.PulseAll(_gate);
        }
        return true;
    }

    private void Loop()
    {
        while (true)
        {
            Job job;
            List<Job> behind;
            lock (_gate)
            {
                while (_waiting.Count == 0 && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;
                job = _waiting[0];
                _waiting.RemoveAt(0);
                behind = [.. _waiting];
            }
            for (int i = 0; i < behind.Count; i++)
                behind[i].Publish(new JobEvent("queued", new JsonObject { ["id"] = behind[i].Id, ["position"] = i + 1, ["model"] = Name }));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            JobRunner.Run(job, this, _pool, _store, _options);
            lock (_gate) _lastSeconds = Math.Max(0.05, clock.Elapsed.TotalSeconds);
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
        foreach (var j in dropped)
            j.Finish("cancelled", new JobEvent("cancelled", new JsonObject { ["id"] = j.Id, ["message"] = "the server is stopping" }));
        _thread.Join(TimeSpan.FromSeconds(30));
    }
}
