using System.CommandLine;
using DiffusersSharp.Training;

namespace DiffusersSharp.Cli;

/// <summary><c>diffusers dataset cats --count N --out DIR [--size 32|64] [--seed s]</c>: procedural cartoon cat faces.</summary>
public static class DatasetCommand
{
    /// <summary>Builds the command (options, arguments and handler) around <paramref name="ctx"/>.</summary>
    public static Command Create(CliContext ctx)
    {
        var count = new Option<int>("--count", "-n") { Description = "Number of images", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Output folder", Required = true };
        var size = new Option<int>("--size") { Description = "Image size: 32 or 64", DefaultValueFactory = _ => 32 };
        var seed = new Option<long>("--seed", "-s") { Description = "Seed (image i of a seed is always the same)", DefaultValueFactory = _ => 0 };
        var cats = new Command("cats", "Draw cartoon cat faces (SkiaSharp) as PNGs") { count, output, size, seed };
        cats.SetAction(pr =>
        {
            int n = pr.GetValue(count), sz = pr.GetValue(size);
            if (sz is not (32 or 64)) throw new UserException($"--size must be 32 or 64, got {sz}");
            if (n <= 0) throw new UserException($"--count must be positive, got {n}");
            string dir = pr.GetValue(output)!;
            bool created = CreateOutFolder(dir);
            try
            {
                CatFaceGenerator.WriteDataset(dir, n, sz, pr.GetValue(seed), cancellationToken: ctx.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C: the folder was new or empty, so the images of this run are all it holds; a partial set is removed
                for (int i = 0; i < n; i++)
                    try { File.Delete(Path.Combine(dir, CatFaceGenerator.FileName(i))); } catch (IOException) { } catch (UnauthorizedAccessException) { }
                if (created)
                    try { Directory.Delete(dir); } catch (IOException) { } catch (UnauthorizedAccessException) { }
                throw;
            }
            ctx.Out.WriteLine($"wrote {n} cat faces ({sz}x{sz}) to {dir}");
            return CliApp.Ok;
        });
        return new Command("dataset", "Generate procedural training data sets") { cats };
    }

    /// <summary>
    /// Creates the <c>--out</c> folder (returns whether it was new), refusing an empty path, a file, and a folder that already holds something (the
    /// images of an earlier data set would be mixed in, and files of the same names replaced); errors name --out.
    /// </summary>
    private static bool CreateOutFolder(string dir)
    {
        if (string.IsNullOrWhiteSpace(dir)) throw new UserException("--out: empty path; give the folder to write the images into");
        if (File.Exists(dir)) throw new UserException($"--out '{dir}' is a file; give a new or empty folder to write the images into");
        try
        {
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
                throw new UserException($"--out '{dir}' already exists and is not empty; give a new or empty folder");
            bool existed = Directory.Exists(dir);
            Directory.CreateDirectory(dir);
            return !existed;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new UserException($"--out '{dir}': cannot create the folder: {e.Message}");
        }
    }
}
