using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace DiffusersSharp.Cli;

/// <summary>
/// libtorch and .NET failures that the input caused (an allocation the sizes asked for, a shape the inputs do not
/// fit), turned into one-line user errors (exit 1) that say what was being done, instead of a stack trace (exit 2).
/// </summary>
internal static partial class NativeFailures
{
    /// <summary>An allocation failure (libtorch's or .NET's) in words, or null for any other exception.</summary>
    public static string? OutOfMemory(Exception e)
    {
        if (e is OutOfMemoryException or InsufficientMemoryException)
            return $"out of memory ({e.Message}); ask for less: a smaller --batch, --width/--height, or a smaller model";
        if (e is ExternalException && e.Message.Contains("can't allocate memory", StringComparison.Ordinal))
        {
            var m = Bytes().Match(e.Message);
            string size = m.Success && double.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, out double b)
                ? $" {b / (1L << 30):0.0} GiB" : "";
            return $"out of memory: libtorch could not allocate{size}; ask for less: a smaller --batch, --width/--height, or a smaller model";
        }
        return null;
    }

    /// <summary>
    /// Runs <paramref name="work"/>; a libtorch error (a shape the inputs do not fit, an allocation) becomes a
    /// <see cref="UserException"/> starting with <paramref name="doing"/> (which names the model and the options), and so
    /// does a run whose latents became non-finite.
    /// </summary>
    public static T During<T>(string doing, Func<T> work)
    {
        try
        {
            return work();
        }
        catch (Exception e) when (OutOfMemory(e) is { } oom)
        {
            throw new UserException($"{doing}: {oom}");
        }
        catch (ExternalException e)
        {
            throw new UserException($"{doing}: libtorch failed: {FirstLine(e.Message)}");
        }
        catch (Pipelines.NonFiniteLatentsException e)
        {
            throw new UserException($"{doing}: {e.Message}");
        }
    }

    private static string FirstLine(string message)
    {
        string first = message.Split('\n', 2)[0].Trim();
        return first.Length <= 300 ? first : first[..300] + "…";
    }

    [GeneratedRegex(@"allocate (\d+) bytes")]
    private static partial Regex Bytes();
}
