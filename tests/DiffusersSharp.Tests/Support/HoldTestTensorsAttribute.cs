using System.Reflection;
using System.Runtime.CompilerServices;
using TorchSharp;
using Xunit.Sdk;

[assembly: DiffusersSharp.Tests.Support.HoldTestTensors]

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// Holds every tensor a synchronous test makes on its thread until the test ends (docs/ARCHITECTURE.md, "Tensor
/// ownership": temporaries and the finaliser). TorchSharp's tensor methods read the native handle and then call libtorch
/// without keeping the managed tensor alive, so a temporary that nothing else references (the <c>abs()</c> of
/// <c>(a - b).abs().max()</c>) can be collected while libtorch still reads it: its finaliser frees the native tensor
/// and the call reads freed memory (CI's test host died so, in <c>at::native::max</c>, on 2026-12-05). A dispose scope
/// holds each tensor made on its thread, so the test runs in one: it opens before the test and, after it, hands the
/// tensors still held back to the garbage collector, as they would be without it (nothing is disposed: a test's
/// tensors kept in static fields stay valid). Async tests are left alone (their continuations may run on other
/// threads, and a scope belongs to one); a hold whose test ended on another thread is let go by the next test on its
/// own thread. Registered for the whole assembly below.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Class | AttributeTargets.Method)]
public sealed class HoldTestTensorsAttribute : BeforeAfterTestAttribute
{
    [ThreadStatic] private static DisposeScope? _held;

    /// <summary>This thread's open hold, or null.</summary>
    internal static DisposeScope? Held => _held;

    public override void Before(MethodInfo methodUnderTest)
    {
        Release();
        if (IsAsync(methodUnderTest)) return;
        _held = torch.NewDisposeScope();
    }

    public override void After(MethodInfo methodUnderTest) => Release();

    private static bool IsAsync(MethodInfo method) =>
        method.GetCustomAttribute<AsyncStateMachineAttribute>() is not null
        || typeof(Task).IsAssignableFrom(method.ReturnType) || method.ReturnType.Name.StartsWith("ValueTask", StringComparison.Ordinal);

    private static void Release()
    {
        var scope = _held;
        if (scope is null) return;
        _held = null;
        scope.Detach(scope.DisposablesView);
        scope.Dispose();
    }
}
