using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DiffusersSharp.Server;

/// <summary>
/// <c>diffusers serve</c>: a Kestrel server with the OpenAI-compatible image API (<c>/v1/images/generations</c>,
/// <c>/v1/images/edits</c>, <c>/v1/models</c>), jobs with server-sent progress events (<c>/v1/jobs</c>), the results and
/// their history, and the web page at <c>/</c>. Loopback by default; any other address needs an API key.
/// <code>
/// await using var server = DiffusersServer.Create(new ServerOptions { Models = ["models/sd15"], Port = 7860 });
/// await server.StartAsync();
/// await server.WaitForShutdownAsync();
/// </code>
/// </summary>
public sealed class DiffusersServer : IAsyncDisposable
{
    /// <summary>Finished jobs that keep all their events (a subscriber arriving just after the end still sees the whole run); older ones are compacted.</summary>
    private const int ReplayJobs = 4;

    private readonly ConcurrentDictionary<string, Job> _jobs = new();
    private readonly object _finishedGate = new();
    private readonly Queue<Job> _recent = new();     // the newest finished jobs, whole, oldest first
    private readonly Queue<Job> _compacted = new();  // older finished jobs, compacted, oldest first
    private readonly Action<string> _log;

    private DiffusersServer(ServerOptions options, Action<string> log)
    {
        Options = options;
        _log = log;
        Store = new ResultStore(options.DataDir);
        Pool = new ModelPool(options, Store, log);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(DiffusersServer).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        var address = ListenAddress(options);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = 64L << 20;
            k.Listen(address, options.Port);
        });
        App = builder.Build();
        // Ctrl+C: Kestrel's graceful stop waits for the requests in flight, and a synchronous request or an event stream
        // ends only when its job does; so the jobs are cancelled first (a running one stops within one step)
        App.Lifetime.ApplicationStopping.Register(CancelAll);
        App.Use(HandleErrorsAndAuth);
        ImagesApi.Map(App, this);
        JobsApi.Map(App, this);
        WebPage.Map(App);
    }

    /// <summary>
    /// Checks the options and builds the server (not started). A non-loopback host without an API key, no model, or a
    /// bad port is a <see cref="DiffusersException"/>.
    /// </summary>
    public static DiffusersServer Create(ServerOptions options, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Models.Count == 0) throw new DiffusersException("serve: give at least one --model (a pipeline folder or Hub id)");
        if (options.Port is < 0 or > 65535) throw new DiffusersException($"--port: must be between 0 and 65535, got {options.Port}");
        if (options.KeepFinishedJobs < 0) throw new DiffusersException($"KeepFinishedJobs: must be 0 or more, got {options.KeepFinishedJobs}");
        if (options.MaxQueue < 0) throw new DiffusersException($"--max-queue: must be 0 or more, got {options.MaxQueue}");
        if (options.MemoryBudgetGb is <= 0) throw new DiffusersException($"--memory-budget: must be positive, got {options.MemoryBudgetGb}");
        var address = ListenAddress(options);
        if (!IPAddress.IsLoopback(address) && string.IsNullOrEmpty(options.ApiKey))
            throw new DiffusersException(
                $"--host {options.Host}: is reachable from other machines; refusing to serve it without --api-key (clients then send 'Authorization: Bearer KEY')");
        return new DiffusersServer(options, log ?? (_ => { }));
    }

    /// <summary>The settings it runs with.</summary>
    public ServerOptions Options { get; }

    /// <summary>The served models and their workers.</summary>
    public ModelPool Pool { get; }

    /// <summary>The finished jobs on disk.</summary>
    public ResultStore Store { get; }

    /// <summary>The ASP.NET Core application (for tests and embedding).</summary>
    public WebApplication App { get; }

    /// <summary>The base address it listens on (<c>http://127.0.0.1:7860</c>), once started.</summary>
    public Uri Address => new(App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    /// <summary>Starts listening (and, when <see cref="ServerOptions.Preload"/> is set, loads the models in the background).</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await App.StartAsync(cancellationToken);
        if (Options.Preload) _ = Task.Run(() => Pool.Preload(_log), CancellationToken.None);
        _log($"serving {string.Join(", ", Pool.Workers.Select(w => w.Name))} at {Address}");
    }

    /// <summary>Completes when the server is stopped (Ctrl+C, or <paramref name="cancellationToken"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => App.WaitForShutdownAsync(cancellationToken);

    /// <summary>The job with that id while it is in memory (queued, running, or recently finished).</summary>
    public Job? FindJob(string id) => _jobs.TryGetValue(id, out var j) ? j : null;

    /// <summary>
    /// The jobs in memory: the queued and running ones, and at most <see cref="ServerOptions.KeepFinishedJobs"/> finished
    /// ones (all but the newest four compacted, see <see cref="Job.Compact"/>); older finished jobs are read from the store.
    /// </summary>
    public int JobsInMemory => _jobs.Count;

    /// <summary>
    /// Cancels <paramref name="job"/> (DELETE /v1/jobs/{id}, or the client of a synchronous request leaving): a waiting job
    /// leaves its queue at once and ends as cancelled, so its slot takes a new job; a running one stops within one step.
    /// </summary>
    public void Cancel(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        job.Cancel();
        Pool.Find(job.Model)?.Withdraw(job);
    }

    /// <summary>
    /// Queues a request on its model's worker: 400 for an unknown model, 429 with Retry-After when the queue is full.
    /// <paramref name="previews"/>: whether its run decodes previews (false for a synchronous request, whose events no one sees).
    /// </summary>
    public Job Submit(ApiRequest request, bool previews = true)
    {
        ArgumentNullException.ThrowIfNull(request);
        var worker = Pool.Find(request.Model) ?? throw new ApiException(400,
            $"model: unknown model '{request.Model}'; served models: {string.Join(", ", Pool.Workers.Select(w => w.Name))}", "model", "model_not_found");
        var job = new Job(worker.Name, request.Generation) { Ended = Forget, Previews = previews };
        _jobs[job.Id] = job;
        if (!worker.TryEnqueue(job))
        {
            _jobs.TryRemove(job.Id, out _);
            throw new ApiException(429, $"the queue of {worker.Name} is full ({Options.MaxQueue} waiting); retry later", null, "queue_full")
            { RetryAfter = worker.RetryAfterSeconds };
        }
        return job;
    }

    /// <summary>
    /// A job has ended (before its <see cref="Job.Finished"/> completes): the newest <see cref="ReplayJobs"/> finished jobs
    /// stay whole, older ones are compacted, and beyond <see cref="ServerOptions.KeepFinishedJobs"/> the oldest leave memory
    /// (the store still serves them).
    /// </summary>
    private void Forget(Job job)
    {
        lock (_finishedGate)
        {
            _recent.Enqueue(job);
            while (_recent.Count > ReplayJobs)
            {
                var older = _recent.Dequeue();
                older.Compact();
                _compacted.Enqueue(older);
            }
            while (_recent.Count + _compacted.Count > Options.KeepFinishedJobs)
                _jobs.TryRemove((_compacted.Count > 0 ? _compacted.Dequeue() : _recent.Dequeue()).Id, out _);
        }
    }

    /// <summary>Cancels every job in memory: waiting ones leave their queues, running ones stop within one step.</summary>
    private void CancelAll()
    {
        foreach (var j in _jobs.Values) Cancel(j);
    }

    private async Task HandleErrorsAndAuth(HttpContext ctx, RequestDelegate next)
    {
        try
        {
            CheckOrigin(ctx.Request);
            // result files are named by a random GUID (122 random bits) and are public, as the URLs of OpenAI's own responses are: a
            // client downloads response_format=url images with a plain GET, without the API key
            if (ctx.Request.Path.StartsWithSegments("/v1") && !ctx.Request.Path.StartsWithSegments("/v1/results") && !Authorized(ctx.Request))
                throw new ApiException(401, "missing or wrong API key: send 'Authorization: Bearer KEY'", null, "invalid_api_key");
            await next(ctx);
        }
        catch (ApiException e) when (!ctx.Response.HasStarted)
        {
            if (e.RetryAfter is int s) ctx.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await WriteJson(ctx, e.Status, e.ToJson());
        }
        catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
        {
            await WriteJson(ctx, e.StatusCode, ApiException.Body($"bad request: {e.Message}", "invalid_request_error"));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // the client left
        }
    }

    /// <summary>
    /// Refuses what a web page of another site makes a browser send (403), which a key-less server on loopback would
    /// otherwise run: a request whose <c>Origin</c> is not this server's own (browsers send it with every cross-site
    /// POST, a form's multipart one included, without asking first), and, without an API key, a <c>Host</c> that is not
    /// a loopback name (a DNS-rebound name that points at 127.0.0.1). Clients that are not browsers send neither.
    /// </summary>
    private void CheckOrigin(HttpRequest request)
    {
        string host = request.Host.Host;
        if (string.IsNullOrEmpty(Options.ApiKey) && IPAddress.IsLoopback(ListenAddress(Options)) && !IsLoopbackName(host))
            throw new ApiException(403, $"Host '{request.Host}' is not a loopback name; this key-less server answers requests to 127.0.0.1, [::1] or localhost only", null, "host_not_allowed");
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method)) return;
        string origin = request.Headers.Origin.ToString();
        if (origin.Length == 0) return;
        bool same = Uri.TryCreate(origin, UriKind.Absolute, out var o)
                    && string.Equals(o.Scheme, request.Scheme, StringComparison.OrdinalIgnoreCase)
                    && string.Equals(o.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase);
        if (!same)
            throw new ApiException(403, $"a request from the web page of {origin} is refused: this server answers its own page and non-browser clients", null, "origin_not_allowed");
    }

    private static bool IsLoopbackName(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    private bool Authorized(HttpRequest request)
    {
        if (string.IsNullOrEmpty(Options.ApiKey)) return true;
        string? given = request.Headers.Authorization.ToString() is { } h && h.StartsWith("Bearer ", StringComparison.Ordinal)
            ? h["Bearer ".Length..].Trim()
            : request.Query["api_key"].ToString();
        return !string.IsNullOrEmpty(given) && CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(Options.ApiKey)));
    }

    /// <summary>Writes <paramref name="body"/> as the JSON response with <paramref name="status"/>.</summary>
    internal static Task WriteJson(HttpContext ctx, int status, JsonNode body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(body.ToJsonString(), ctx.RequestAborted);
    }

    private static IPAddress ListenAddress(ServerOptions options)
    {
        if (string.Equals(options.Host, "localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        return IPAddress.TryParse(options.Host, out var ip) ? ip
            : throw new DiffusersException($"--host: '{options.Host}' is not an IP address (use 127.0.0.1, ::1, 0.0.0.0 or an address of this machine)");
    }

    /// <summary>Stops listening, the workers (waiting jobs are cancelled) and frees the models and the store.</summary>
    public async ValueTask DisposeAsync()
    {
        try { await App.StopAsync(); } catch (InvalidOperationException) { /* never started */ }
        foreach (var j in _jobs.Values) j.Cancel();
        Pool.Dispose();
        await App.DisposeAsync();
        Store.Dispose();
    }
}
