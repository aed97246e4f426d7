using System.Net;
using System.Net.Http.Headers;

namespace DiffusersSharp.Hub;

/// <summary>How a request follows HTTP redirects.</summary>
internal enum RedirectMode
{
    /// <summary>Only same-host relative redirects (a renamed repo), as <c>get_hf_file_metadata</c>: a CDN redirect is returned as is.</summary>
    RelativeOnly,
    /// <summary>All redirects (requests' default for GET); the Authorization header is dropped when the host changes.</summary>
    All,
}

/// <summary>
/// HTTP for the Hub: bearer token, redirects, retries with exponential backoff on connection failures, 429 and
/// 5xx, and <c>hf_raise_for_status</c>'s mapping of error responses (X-Error-Code) to <see cref="HubException"/>.
/// </summary>
internal sealed class HubHttp
{
    private readonly HttpClient _client;
    private readonly HubClientOptions _options;

    public HubHttp(HttpClient client, HubClientOptions options)
    {
        _client = client;
        _options = options;
    }

    /// <summary>
    /// Sends the request, following redirects as <paramref name="redirects"/> says. With <paramref name="retry"/> false
    /// it is one attempt: a metadata call with a cached copy to fall back to (huggingface_hub: "no retry for fast
    /// fallback to local cache").
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(
        HttpMethod method, string url, string? token, RedirectMode redirects, string repoId,
        long rangeFrom = 0, CancellationToken ct = default, bool retry = true)
    {
        int maxRetries = retry ? _options.MaxRetries : 0;
        for (int attempt = 0; ; attempt++)
        {
            HttpResponseMessage? response = null;
            try
            {
                response = await SendFollowingAsync(method, url, token, redirects, rangeFrom, ct).ConfigureAwait(false);
                int code = (int)response.StatusCode;
                if ((code == 429 || code >= 500) && attempt < maxRetries)
                {
                    TimeSpan wait = RetryAfter(response) ?? Backoff(attempt);
                    response.Dispose();
                    await Task.Delay(wait, ct).ConfigureAwait(false);
                    continue;
                }
                if (code >= 400)
                {
                    var error = MapError(response, repoId);
                    response.Dispose();
                    throw error;
                }
                return response;
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                response?.Dispose();
                if (attempt >= maxRetries || IsUnreachable(e))
                    throw new HubException(HubErrorKind.Network,
                        $"Could not reach the Hub at {url}: {e.Message}" + (attempt > 0 ? $" (after {attempt + 1} attempts)" : ""), e)
                    { Url = url, RepoId = repoId };
                await Task.Delay(Backoff(attempt), ct).ConfigureAwait(false);
            }
        }
    }

    private async Task<HttpResponseMessage> SendFollowingAsync(
        HttpMethod method, string url, string? token, RedirectMode redirects, long rangeFrom, CancellationToken ct)
    {
        var current = new Uri(url);
        string originalHost = current.Authority;
        for (int hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, current);
            if (token is not null && current.Authority == originalHost)
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Headers.UserAgent.ParseAdd("DiffusersSharp/0.25.1 huggingface_hub/0.20.3");
            request.Headers.AcceptEncoding.ParseAdd("identity");
            if (rangeFrom > 0) request.Headers.Range = new RangeHeaderValue(rangeFrom, null);

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(method == HttpMethod.Head ? _options.EtagTimeout : _options.RequestTimeout);
            var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            int code = (int)response.StatusCode;
            if (code is < 300 or > 399 || response.Headers.Location is null || hop >= 10) return response;
            Uri location = response.Headers.Location;
            if (redirects == RedirectMode.RelativeOnly)
            {
                if (location.IsAbsoluteUri) return response;
                location = new Uri(current, location);
            }
            else if (!location.IsAbsoluteUri) location = new Uri(current, location);
            response.Dispose();
            current = location;
        }
    }

    /// <summary>Connection reset, timeouts and truncated responses are retried; user cancellation is not.</summary>
    public static bool IsTransient(Exception e, CancellationToken ct) => e switch
    {
        OperationCanceledException => !ct.IsCancellationRequested,
        HttpRequestException or IOException => true,
        _ => false,
    };

    /// <summary>The endpoint cannot be reached at all (refused, DNS): no point retrying, fall back to the cache.</summary>
    private static bool IsUnreachable(Exception e) =>
        e is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError };

    public TimeSpan Backoff(int attempt) =>
        TimeSpan.FromTicks(Math.Min(_options.RetryBaseDelay.Ticks << Math.Min(attempt, 10), _options.RetryMaxDelay.Ticks));

    private TimeSpan? RetryAfter(HttpResponseMessage r)
    {
        if (r.Headers.RetryAfter?.Delta is { } d) return d < _options.RetryMaxDelay ? d : _options.RetryMaxDelay;
        return null;
    }

    /// <summary>Where a token comes from, for the messages of authentication errors.</summary>
    public const string TokenSources = "token:, HF_TOKEN, or the token file that `huggingface-cli login` writes: HF_TOKEN_PATH, default $HF_HOME/token";

    /// <summary>
    /// An error of a metadata call that is raised as it is when the file is not cached (huggingface_hub: repo not found,
    /// gated, and "Unauthorized => likely a token issue"); any other falls back to the cache or to "check your connection".
    /// </summary>
    public static bool IsAuthOrRepoError(HubException e) => e.Kind is HubErrorKind.RepositoryNotFound or HubErrorKind.GatedRepo || e.StatusCode == 401;

    /// <summary><c>hf_raise_for_status</c>.</summary>
    public static HubException MapError(HttpResponseMessage r, string repoId)
    {
        int code = (int)r.StatusCode;
        string url = r.RequestMessage?.RequestUri?.ToString() ?? "";
        string? errorCode = r.Headers.TryGetValues("X-Error-Code", out var v) ? v.FirstOrDefault() : null;
        string prefix = $"{code} Client Error.\n\n";
        string? commit = r.Headers.TryGetValues("X-Repo-Commit", out var c) ? c.FirstOrDefault() : null;
        HubException Make(HubErrorKind kind, string msg) => new(kind, msg) { StatusCode = code, Url = url, RepoId = repoId, CommitHash = commit };

        if (errorCode == "RevisionNotFound")
            return Make(HubErrorKind.RevisionNotFound, prefix + $"Revision Not Found for url: {url}.\nThe repository '{repoId}' has no such branch, tag or commit.");
        if (errorCode == "EntryNotFound")
            return Make(HubErrorKind.EntryNotFound, prefix + $"Entry Not Found for url: {url}.");
        if (errorCode == "GatedRepo")
            return Make(HubErrorKind.GatedRepo, prefix + $"Cannot access gated repo for url {url}.\nAccess to model {repoId} is restricted: "
                                                + $"accept its conditions on the Hub and pass a token with access ({TokenSources}).");
        string? errorMessage = r.Headers.TryGetValues("X-Error-Message", out var m) ? m.FirstOrDefault() : null;
        if (code == 401 && errorMessage == "Invalid credentials in Authorization header")
            return Make(HubErrorKind.Http, prefix + $"Invalid credentials in Authorization header for url: {url}.\nThe token sent was refused: "
                                           + $"check or renew it ({TokenSources}).");
        // huggingface_hub's REPO_API_REGEX: a 401 on /api/models/... or .../resolve/... is how the Hub answers for a
        // missing, private or gated repo without a usable token
        if (errorCode == "RepoNotFound" || (code == 401 && (url.Contains("/api/models/", StringComparison.Ordinal) || url.Contains("/resolve/", StringComparison.Ordinal))))
            return Make(HubErrorKind.RepositoryNotFound, prefix + $"Repository Not Found for url: {url}.\nPlease make sure you specified the correct `repo_id` ('{repoId}')"
                                                         + $" and `repo_type`.\nIf you are trying to access a private or gated repo, make sure you are authenticated ({TokenSources}).");
        string reason = r.ReasonPhrase ?? ((HttpStatusCode)code).ToString();
        return Make(HubErrorKind.Http, $"{code} {(code < 500 ? "Client" : "Server")} Error: {reason} for url: {url}");
    }
}
