using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// The models' tensor ownership rule (docs/ARCHITECTURE.md, "Tensor ownership"), applied in one place: a call owns
/// what it returns and never disposes its arguments, unless an argument is handed over; the caller disposes what it
/// no longer needs. A chain follows one value through the sub-calls of a forward pass, as a Python variable that is
/// rebound (<c>h = resnet(h, temb)</c>): <see cref="Then"/> runs the call in its own dispose scope, so that its
/// temporaries (views included) are freed when it returns, and disposes the value it replaces, as refcounting would,
/// unless that value is not the chain's: the caller's argument (unless handed over) or a value given out with
/// <see cref="Keep"/> (a skip state).
/// </summary>
internal sealed class Chain
{
    private readonly Tensor _argument;
    private readonly bool _ownsArgument;
    private bool _kept;

    /// <param name="argument">The caller's tensor the chain starts from.</param>
    /// <param name="handedOver">The caller handed <paramref name="argument"/> over: the chain disposes it once replaced.</param>
    public Chain(Tensor argument, bool handedOver = false)
    {
        _argument = argument;
        _ownsArgument = handedOver;
        Value = argument;
    }

    /// <summary>The current value.</summary>
    public Tensor Value { get; private set; }

    /// <summary>True when the current value is the chain's to dispose (nobody else holds it).</summary>
    public bool OwnsValue => !_kept && (_ownsArgument || !ReferenceEquals(Value, _argument));

    /// <summary><c>value = call(value)</c>, freeing the call's temporaries and the replaced value when it is ours.</summary>
    public Chain Then(Func<Tensor, Tensor> call)
    {
        var previous = Value;
        var next = Scoped(() => call(previous));
        bool same = ReferenceEquals(previous, next) || previous.Handle == next.Handle;
        if (!same && OwnsValue) previous.Dispose();
        return Become(next, same);
    }

    /// <summary>
    /// Like <see cref="Then"/>, but hands the value over to <paramref name="call"/> when it is ours (the bool says so):
    /// the callee then disposes it as soon as it has used it, instead of the chain after the call.
    /// </summary>
    public Chain ThenHandingOver(Func<Tensor, bool, Tensor> call)
    {
        var previous = Value;
        bool owned = OwnsValue;
        var next = Scoped(() => call(previous, owned));
        return Become(next, ReferenceEquals(previous, next));
    }

    /// <summary>Gives the current value out (a skip state): the chain will not dispose it.</summary>
    public Tensor Keep()
    {
        _kept = true;
        return Value;
    }

    /// <summary>Disposes the current value if it is ours (the end of a side branch).</summary>
    public void Release()
    {
        if (OwnsValue) Value.Dispose();
    }

    private static Tensor Scoped(Func<Tensor> call)
    {
        using var scope = torch.NewDisposeScope();
        return scope.MoveToOuter(call());
    }

    private Chain Become(Tensor next, bool same)
    {
        if (!same) _kept = false;
        Value = next;
        return this;
    }
}
