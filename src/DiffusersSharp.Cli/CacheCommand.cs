using System.CommandLine;
using System.Globalization;
using DiffusersSharp.Hub;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers cache list [--cache-dir d]</c> (repositories, their types, revisions and sizes, as a table) and
/// <c>diffusers cache rm &lt;id&gt; [--repo-type model|dataset|space] [--cache-dir d]</c> (deletes every revision and blob
/// of the repository that <c>list</c> shows with that REPO ID and REPO TYPE; default a model, as huggingface-cli's
/// <c>--repo-type</c>). The cache is the one huggingface_hub uses (<c>HF_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else
/// <c>~/.cache/huggingface/hub</c>); a <c>--cache-dir</c> beginning with <c>~</c> is under the home folder, as
/// huggingface_hub expands it (<see cref="UserPath.ExpandUser"/>), also when the shell did not (a quoted <c>'~/x'</c>).
/// </summary>
public static class CacheCommand
{
    /// <summary>The <c>--cache-dir</c> option shared by <c>download</c> and <c>cache</c>.</summary>
    public static Option<string?> CacheDirOption() =>
        new("--cache-dir") { Description = "Hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)" };

    /// <summary>
    /// The cache folder: <paramref name="cacheDir"/> with a leading <c>~</c> expanded to the home folder, as an absolute
    /// path, or the environment's when null.
    /// </summary>
    public static string FullCacheDir(string? cacheDir)
    {
        if (cacheDir is null) return HubSettings.DefaultCacheDir();
        if (string.IsNullOrWhiteSpace(cacheDir)) throw new UserException("--cache-dir: empty path");
        return Path.GetFullPath(UserPath.ExpandUser(cacheDir));
    }

    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var listDir = CacheDirOption();
        var list = new Command("list", "List the cached repositories with their revisions and sizes") { listDir };
        list.SetAction(pr => List(ctx, pr.GetValue(listDir)));

        var id = new Argument<string>("id") { Description = "Hub repository id as `cache list` shows it (REPO ID), e.g. google/ddpm-cat-256" };
        var repoType = new Option<string>("--repo-type")
        {
            Description = "The repository's type as `cache list` shows it (REPO TYPE)", DefaultValueFactory = _ => "model",
        };
        repoType.AcceptOnlyFromAmong([.. HubCache.RepoTypes]);
        var rmDir = CacheDirOption();
        var rm = new Command("rm", "Remove a repository (all its revisions and files) from the cache") { id, repoType, rmDir };
        rm.SetAction(pr => Remove(ctx, pr.GetValue(id)!, pr.GetValue(rmDir), pr.GetValue(repoType) ?? "model"));

        return new Command("cache", "Inspect or clean the Hugging Face cache") { list, rm };
    }

    /// <summary>
    /// <c>diffusers cache list</c>: prints each cached repo with its revisions and size; returns the exit code.
    /// </summary>
    public static int List(CliContext ctx, string? cacheDir)
    {
        string dir = FullCacheDir(cacheDir);
        var warnings = new List<string>();
        var repos = HubCache.ScanRepos(dir, warnings);
        foreach (var w in warnings) ctx.Warn(w);
        if (repos.Count == 0)
        {
            ctx.Out.WriteLine($"No cached repositories in {dir}.");
            return CliApp.Ok;
        }
        var rows = new List<string[]> { new[] { "REPO ID", "REPO TYPE", "SIZE ON DISK", "NB FILES", "LAST MODIFIED", "REVISION", "REFS", "REVISION SIZE", "LOCAL PATH" } };
        foreach (var repo in repos)
        {
            string modified = repo.LastModified.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
            if (repo.Revisions.Count == 0)
                rows.Add([repo.RepoId, repo.RepoType, repo.SizeOnDiskString, repo.NbFiles.ToString(CultureInfo.InvariantCulture), modified, "-", "", "", repo.RepoPath]);
            for (int i = 0; i < repo.Revisions.Count; i++)
            {
                var rev = repo.Revisions[i];
                rows.Add(i == 0
                    ? [repo.RepoId, repo.RepoType, repo.SizeOnDiskString, repo.NbFiles.ToString(CultureInfo.InvariantCulture), modified,
                       rev.CommitHash, string.Join(", ", rev.Refs), HubDownloadProgress.FormatSize(rev.SizeOnDisk), repo.RepoPath]
                    : ["", "", "", "", "", rev.CommitHash, string.Join(", ", rev.Refs), HubDownloadProgress.FormatSize(rev.SizeOnDisk), ""]);
            }
        }
        WriteTable(ctx.Out, rows);
        long total = repos.Sum(r => r.SizeOnDisk);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine($"{repos.Count} repo(s) in {dir}, {HubDownloadProgress.FormatSize(total)} in total.");
        return CliApp.Ok;
    }

    /// <summary>
    /// <c>diffusers cache rm</c>: deletes one repo of <paramref name="repoType"/> (model, dataset or space) from the cache;
    /// returns the exit code.
    /// </summary>
    public static int Remove(CliContext ctx, string repoId, string? cacheDir, string repoType = "model")
    {
        var removed = HubCache.Remove(repoId, FullCacheDir(cacheDir), repoType);
        string what = removed.RepoType == "model" ? removed.RepoId : $"{removed.RepoType} {removed.RepoId}";
        ctx.Out.WriteLine($"Removed {what} ({removed.Revisions.Count} revision(s), {removed.SizeOnDiskString}) from {removed.RepoPath}.");
        return CliApp.Ok;
    }

    /// <summary>Left-aligned columns separated by two spaces, with a dashed line under the header.</summary>
    private static void WriteTable(TextWriter o, List<string[]> rows)
    {
        int[] widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        string Line(IEnumerable<string> cells) => string.Join("  ", cells.Select((s, c) => s.PadRight(widths[c]))).TrimEnd();
        o.WriteLine(Line(rows[0]));
        o.WriteLine(Line(widths.Select(w => new string('-', w))));
        foreach (var r in rows.Skip(1)) o.WriteLine(Line(r));
    }
}
