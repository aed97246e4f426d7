using System.Runtime.CompilerServices;
using DiffusersSharp.Runtime;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// Process-wide set-up of the test host, before any test: where libtorch's oneDNN computes some convolutions wrongly on
/// this machine (<see cref="OneDnnConvolutions"/>), it is switched off from the start, so that every test of the run
/// takes one convolution path (the library would switch at the first pass of a model at risk, in the middle of tests that
/// run at the same time and compare two runs bit for bit). Runtime/OneDnnConvolutionsTests covers the switch itself in a
/// child process. Where oneDNN is correct, nothing changes.
/// </summary>
internal static class TestAssemblySetup
{
#pragma warning disable CA2255 // a module initializer is the right tool: it must run before the first test
    [ModuleInitializer]
    internal static void Run()
    {
        if (Environment.GetEnvironmentVariable("DIFFUSERS_SHARP_TESTS_CHILD") == "1") return;   // child processes decide for themselves
        var warn = OneDnnConvolutions.Warn;
        OneDnnConvolutions.Warn = _ => { };
        OneDnnConvolutions.AvoidIfWrong();
        OneDnnConvolutions.Warn = warn;
    }
#pragma warning restore CA2255
}
