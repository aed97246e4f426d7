using DiffusersSharp.Runtime;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// The test assembly's entry point (the csproj turns the test SDK's generated one off; test hosts never call it):
/// <c>dotnet DiffusersSharp.Tests.dll native-run ...</c> runs the child processes of the native fault tests;
/// <c>dotnet DiffusersSharp.Tests.dll fused-attention-status</c> prints <see cref="FusedAttention.Status"/> read before
/// any tensor exists (Runtime/FusedAttentionTests).
/// </summary>
public static class TestProgram
{
    public const string FusedAttentionStatusVerb = "fused-attention-status";

    public static int Main(string[] args)
    {
        if (args is [FusedAttentionStatusVerb])
        {
            Console.WriteLine(FusedAttention.Status);
            return 0;
        }
        if (args.Length > 0 && args[0] == NativeRun.Verb)
        {
            try
            {
                return NativeRun.Run(args[1..]);
            }
            catch (Exception e) // a managed error exits 1; only native faults end in a signal
            {
                Console.Error.WriteLine(e);
                return 1;
            }
        }
        Console.Error.WriteLine($"usage: dotnet DiffusersSharp.Tests.dll {NativeRun.Verb} [options] SPEC... (see Support/NativeRun.cs)");
        return 2;
    }
}
