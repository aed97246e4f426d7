namespace DiffusersSharp.Hub;

/// <summary>A Hub download or cache operation failed; <see cref="Kind"/> says why.</summary>
public class HubException : DiffusersException
{
    /// <summary>A Hub error of kind <paramref name="kind"/>.</summary>
    public HubException(HubErrorKind kind, string message) : base(message) { Kind = kind; }
    /// <summary>A Hub error of kind <paramref name="kind"/> caused by <paramref name="inner"/>.</summary>
    public HubException(HubErrorKind kind, string message, Exception inner) : base(message, inner) { Kind = kind; }

    /// <summary>
    /// What went wrong, as huggingface_hub's exception classes tell it (entry not found, gated repo, offline, ...).
    /// </summary>
    public HubErrorKind Kind { get; }

    /// <summary>The HTTP status code of the failing response, when there was one.</summary>
    public int? StatusCode { get; init; }

    /// <summary>The URL of the failing request, when there was one.</summary>
    public string? Url { get; init; }

    /// <summary>The repository the operation concerned.</summary>
    public string? RepoId { get; init; }

    /// <summary>The commit the server reported (<c>X-Repo-Commit</c>), when it did.</summary>
    public string? CommitHash { get; init; }
}
