using System.Globalization;

namespace DiffusersSharp.Schedulers;

/// <summary>
/// The words of the schedule-made causes that the multistep solvers' <c>NonFiniteCause</c> overrides give (DPM-Solver
/// multistep, DEIS, UniPC, LMS), each computed from the scheduler's own schedule: which sigmas a step read that are
/// equal, why they are (a timestep repeated, one outside the trained range that <c>np.interp</c> clamps to the table's
/// end, the final sigma repeating the last), and which nearby schedules have none equal. Each class decides itself
/// whether its step divides by their difference; this only words it.
/// </summary>
internal static class NonFiniteSchedules
{
    /// <summary>
    /// The first run of equal neighbouring entries among <paramref name="sigmas"/>[<paramref name="lo"/>..<paramref
    /// name="hi"/>], described: e.g. "sigmas[0] and sigmas[1] (timesteps 1000 and 999) are both 14.614645: timestep 1000
    /// lies past the last trained timestep 999, and np.interp clamps it to that timestep's sigma (context)"; null where
    /// they all differ. Entry k is the sigma of <paramref name="timesteps"/>[k]; the entry after the last timestep is the
    /// final sigma, <paramref name="finalNote"/> saying why it equals the one before (null: it is never the reason).
    /// </summary>
    public static string? Describe(double[] timesteps, float[] sigmas, int lo, int hi, int trainTimesteps, string? finalNote, string context)
    {
        lo = Math.Max(lo, 0);
        hi = Math.Min(hi, sigmas.Length - 1);
        int a = lo;
        while (a < hi && sigmas[a] != sigmas[a + 1]) a++;
        if (a >= hi) return null;
        int b = a + 1;
        while (b < hi && sigmas[b + 1] == sigmas[a]) b++;
        var run = Enumerable.Range(a, b - a + 1).ToArray();
        var inRun = run.Where(k => k < timesteps.Length).Select(k => timesteps[k]).ToArray();
        bool final = b >= timesteps.Length;
        string labels = final
            ? Join(inRun.Select(t => $"timestep {Fmt(t)}").Append("the final sigma").ToArray())
            : "timesteps " + Join(inRun.Select(Fmt).ToArray());
        string head = run.Length == 2
            ? $"sigmas[{a}] and sigmas[{b}] ({labels}) are both {Fmt(sigmas[a])}"
            : $"sigmas[{a}] to sigmas[{b}] ({labels}) are all {Fmt(sigmas[a])}";
        double[] past = inRun.Where(t => t >= trainTimesteps).ToArray(), before = inRun.Where(t => t < 0).ToArray();
        double[] repeated = inRun.Where(t => inRun.Count(u => u == t) > 1).ToArray();
        string why = past.Length > 0
            ? $"timestep {Fmt(past[0])} lies past the last trained timestep {trainTimesteps - 1}, and np.interp clamps it to that timestep's sigma"
            : before.Length > 0
                ? $"timestep {Fmt(before[0])} lies before timestep 0, and np.interp clamps it to sigma(t = 0)"
                : repeated.Length > 0
                    ? $"timestep {Fmt(repeated[0])} occurs {timesteps.Count(t => t == repeated[0])} times in the schedule"
                    : final && finalNote is not null ? finalNote : "they round to the same float32";
        return $"{head}: {why} ({context})";
    }

    /// <summary>
    /// "{what} at 998 inference steps, or with timestep_spacing "trailing" at 1000": the nearest step count from
    /// <paramref name="n"/> in <paramref name="direction"/> (−1: fewer, +1: more; within [1, <paramref name="maxSteps"/>]
    /// and <see cref="SearchedCounts"/> of <paramref name="n"/>) and the other spacings at <paramref name="n"/> where
    /// <paramref name="fine"/>(steps, spacing) holds; null where none does.
    /// </summary>
    public static string? Remedy(string what, int n, string spacing, int maxSteps, int direction, Func<int, string, bool> fine)
    {
        int? near = null;
        for (int m = n + direction; near is null && m >= 1 && m <= maxSteps && Math.Abs(m - n) <= SearchedCounts; m += direction)
            if (fine(m, spacing)) near = m;
        var others = new[] { "leading", "trailing", "linspace" }.Where(s => s != spacing && fine(n, s)).ToArray();
        var ways = new List<string>();
        if (near is int k) ways.Add($"at {k} inference steps");
        if (others.Length > 0) ways.Add($"with timestep_spacing {string.Join(" or ", others.Select(s => $"\"{s}\""))} at {n}");
        return ways.Count == 0 ? null : $"{what} {string.Join(", or ", ways)}";
    }

    /// <summary>
    /// <see cref="Remedy"/> judged on schedules built by copies of a scheduler: <paramref name="copy"/> makes one per
    /// timestep_spacing (its config with that spacing), <c>SetTimesteps</c> sets each step count tried, and
    /// <paramref name="fine"/> judges the copy; the copies are disposed before it returns.
    /// </summary>
    public static string? Remedy<TScheduler>(string what, int n, string spacing, int maxSteps, int direction,
        Func<string, TScheduler> copy, Func<TScheduler, bool> fine) where TScheduler : IScheduler
    {
        var copies = new Dictionary<string, TScheduler>();
        try
        {
            return Remedy(what, n, spacing, maxSteps, direction, (steps, s) =>
            {
                if (!copies.TryGetValue(s, out var scheduler)) copies[s] = scheduler = copy(s);
                scheduler.SetTimesteps(steps);
                return fine(scheduler);
            });
        }
        finally
        {
            foreach (var scheduler in copies.Values) scheduler.Dispose();
        }
    }

    /// <summary>How many step counts <see cref="Remedy"/> tries at most (each builds a schedule; Karras sigmas cost
    /// O(steps · num_train_timesteps) apiece).</summary>
    public const int SearchedCounts = 100;

    /// <summary>True where no two neighbouring sigmas of a schedule are equal. The final sigma (after the last timestep)
    /// is compared with the last only where <paramref name="compareFinal"/>: a zero h on the last step is harmless
    /// where that step is first-order or its update does not divide by h.</summary>
    public static bool Distinct(float[] sigmas, bool compareFinal)
    {
        int last = compareFinal ? sigmas.Length - 1 : sigmas.Length - 2;
        for (int k = 0; k < last; k++)
            if (sigmas[k] == sigmas[k + 1]) return false;
        return true;
    }

    /// <summary>The first of <paramref name="terms"/> (a step's scalars, in the order the step computes them) that is
    /// NaN or infinite, as "expr is NaN" / "expr is infinite"; null where all are finite.</summary>
    public static string? FirstNonFinite(params (string Expr, float Value)[] terms)
    {
        foreach (var (expr, value) in terms)
        {
            if (float.IsNaN(value)) return $"{expr} is NaN";
            if (float.IsInfinity(value)) return $"{expr} is infinite";
        }
        return null;
    }

    /// <summary>"h is 0" / "h and h0 are 0": the differences among <paramref name="differences"/> that are 0; null where
    /// none is.</summary>
    public static string? ZeroDifferences(params (string Name, float Value)[] differences)
    {
        var zero = differences.Where(d => d.Value == 0).Select(d => d.Name).ToArray();
        return zero.Length switch { 0 => null, 1 => $"{zero[0]} is 0", _ => $"{Join(zero)} are 0" };
    }

    /// <summary>"{zeros}, and the {update}'s {bad}" where both are known (a step that divided by a zero difference);
    /// null otherwise.</summary>
    public static string? Division(string? zeros, string update, string? bad) =>
        zeros is null || bad is null ? null : $"{zeros}, and the {update}'s {bad}";

    private static string Join(string[] items) =>
        items.Length <= 1 ? string.Concat(items) : $"{string.Join(", ", items[..^1])} and {items[^1]}";

    private static string Fmt(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    private static string Fmt(float v) => v.ToString("R", CultureInfo.InvariantCulture);
}
