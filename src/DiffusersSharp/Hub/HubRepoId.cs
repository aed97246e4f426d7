using System.Text;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Hub;

/// <summary>Repo-id and revision rules of huggingface_hub 0.20.3 (<c>validate_repo_id</c>, <c>repo_folder_name</c>).</summary>
public static partial class HubRepoId
{
    /// <summary>A full commit sha (<c>REGEX_COMMIT_HASH</c>): exactly 40 lowercase hex digits.</summary>
    public static bool IsCommitHash(string revision) => CommitHashRegex().IsMatch(revision);

    /// <summary>Throws <see cref="HubException"/> (InvalidInput) unless <paramref name="repoId"/> is "name" or "namespace/name".</summary>
    public static void Validate(string? repoId)
    {
        if (repoId is null)
            throw Invalid("Repo id must be a string, not null.");
        if (repoId.Count(c => c == '/') > 1)
            throw Invalid($"Repo id must be in the form 'repo_name' or 'namespace/repo_name': '{repoId}'. Use `repo_type` argument if needed.");
        if (!MatchesRepoIdRegex(repoId))
            throw Invalid("Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' are forbidden, '-' and '.' cannot start or end the name, max length is 96:"
                          + $" '{repoId}'.");
        if (repoId.Contains("--") || repoId.Contains(".."))
            throw Invalid($"Cannot have -- or .. in repo_id: '{repoId}'.");
        if (repoId.EndsWith(".git", StringComparison.Ordinal))
            throw Invalid($"Repo_id cannot end by '.git': '{repoId}'.");
    }

    /// <summary>True when <paramref name="repoId"/> passes <see cref="Validate"/>.</summary>
    public static bool IsValid(string? repoId)
    {
        try { Validate(repoId); return true; }
        catch (HubException) { return false; }
    }

    /// <summary>The cache folder name: <c>models--org--name</c>.</summary>
    public static string FolderName(string repoId, string repoType = "model")
    {
        Validate(repoId);
        return string.Join("--", new[] { repoType + "s" }.Concat(repoId.Split('/')));
    }

    /// <summary>Checks a revision (branch, tag or sha) can be used as a <c>refs/</c> file name.</summary>
    public static void ValidateRevision(string revision)
    {
        if (revision.Length == 0 || revision.Contains('\\') || revision.Contains('\0')
            || revision.Split('/').Any(p => p is "" or "." or ".."))
            throw new HubException(HubErrorKind.InvalidInput, $"Invalid revision: '{revision}'. A revision is a branch, a tag or a commit sha.") { Key = "revision" };
    }

    /// <summary>
    /// The checks every Hub call starts with: <paramref name="repoId"/> (<see cref="Validate"/>) and the revision, default
    /// <c>main</c> (<see cref="ValidateRevision"/>); returns the revision.
    /// </summary>
    public static string ValidateWithRevision(string repoId, string? revision)
    {
        Validate(repoId);
        revision ??= "main";
        ValidateRevision(revision);
        return revision;
    }

    /// <summary>
    /// The special ref at the start of <paramref name="revisionPath"/> (huggingface_hub's
    /// <c>SPECIAL_REFS_REVISION_REGEX</c>: <c>refs/convert/…</c> or <c>refs/pr/N</c>, revisions with a '/' that an
    /// <c>hf://org/name@rev/path</c> path writes unquoted), or null.
    /// </summary>
    public static string? SpecialRefPrefix(string revisionPath) =>
        SpecialRefRegex().Match(revisionPath) is { Success: true } m ? m.Value : null;

    /// <summary>
    /// huggingface_hub's <c>safe_revision</c> (HfFileSystem): <paramref name="revision"/> as an <c>org/name@rev</c> path
    /// writes it, a special ref (<see cref="SpecialRefPrefix"/>) as it is, any other URL-quoted (<c>quote(revision,
    /// safe="")</c>: <c>feature/x</c> is <c>feature%2Fx</c>), so that reading the path back gives the same revision.
    /// </summary>
    public static string SafeRevision(string revision) =>
        SpecialRefPrefix(revision) is not null ? revision : Uri.EscapeDataString(revision);

    private static HubException Invalid(string message) => new(HubErrorKind.InvalidInput, message) { Key = "repo_id" };

    /// <summary>
    /// huggingface_hub's <c>REPO_ID_REGEX</c>, <c>^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$</c>, as Python's <c>re</c> reads
    /// it (not .NET's, whose <c>\w</c> differs): an optional namespace and a name of 1 to 96 code points, each of word
    /// characters, '-' and '.', starting and ending with a word character (<see cref="IsWordCharacter"/>). One
    /// difference, on purpose: Python's <c>$</c> also matches before a final newline, so huggingface_hub takes
    /// <c>"org/name\n"</c> (an id read from a file) and makes a cache folder with a newline in its name; it is refused here.
    /// </summary>
    private static bool MatchesRepoIdRegex(string s)
    {
        int slash = s.IndexOf('/');
        return slash < 0 ? IsIdPart(s, 96) : IsIdPart(s[..slash], int.MaxValue) && IsIdPart(s[(slash + 1)..], 96);
    }

    private static bool IsIdPart(string part, int maxCodePoints)
    {
        var runes = part.EnumerateRunes().ToList();
        return runes.Count >= 1 && runes.Count <= maxCodePoints && IsWordCharacter(runes[0]) && IsWordCharacter(runes[^1])
               && runes.All(r => IsWordCharacter(r) || r.Value is '-' or '.');
    }

    /// <summary>
    /// Python's <c>\w</c> on a str: <c>str.isalnum()</c> (a letter or a number of any kind, beyond U+FFFF too) or '_'.
    /// .NET's <c>\w</c> also takes combining marks and connector punctuation, and neither numbers other than decimal
    /// digits (²) nor characters outside the BMP.
    /// </summary>
    private static bool IsWordCharacter(Rune r) => r.Value == '_' || Rune.IsLetter(r) || Rune.IsNumber(r);

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitHashRegex();

    [GeneratedRegex(@"^(refs/convert/\w+|refs/pr/\d+)")]
    private static partial Regex SpecialRefRegex();
}
